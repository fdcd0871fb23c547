package config

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
)

// redacted is what a secret prints as, anywhere.
const redacted = "[redacted]"

// Secret is a string that must not reach a log, an error or a page: tokens,
// signing secrets, passwords. Every way of printing it (fmt verbs, slog, JSON,
// text encoders) shows "[redacted]"; an empty secret prints as "" so that
// "not set" stays visible. Use Value to get the secret itself.
type Secret string

// Value returns the secret itself, for the one place that needs it.
func (s Secret) Value() string { return string(s) }

// String returns "[redacted]", or "" when the secret is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// Format makes every fmt verb, %d and %x included, print the redacted form.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// LogValue keeps the secret out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON keeps the secret out of JSON.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText keeps the secret out of text-based encoders (YAML, XML, map keys).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

var (
	_ fmt.Stringer   = Secret("")
	_ fmt.Formatter  = Secret("")
	_ slog.LogValuer = Secret("")
	_ json.Marshaler = Secret("")
)
