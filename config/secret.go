package config

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"reflect"

	"github.com/switchboardhq/switchboard"
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

// Secrets returns every secret the configuration holds (each Secret field,
// wherever it is, the store URL's password, and the values of ${...}
// references in workflow steps), for a run to resolve its references and
// for everything Switchboard writes to be redacted.
func (c *Config) Secrets() *switchboard.Secrets {
	var values []string
	collectSecrets(reflect.ValueOf(c).Elem(), &values)
	if u, err := url.Parse(c.Store); err == nil {
		if pw, ok := u.User.Password(); ok {
			values = append(values, pw)
		}
		if pw := u.Query().Get("password"); pw != "" {
			values = append(values, pw)
		}
	}
	return switchboard.NewSecrets(values, c.refs)
}

var secretType = reflect.TypeFor[Secret]()

// collectSecrets appends the value of every Secret reachable from v: a
// field added later is covered without being named here.
func collectSecrets(v reflect.Value, out *[]string) {
	switch v.Kind() {
	case reflect.String:
		if v.Type() == secretType && v.String() != "" {
			*out = append(*out, v.String())
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			collectSecrets(v.Elem(), out)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				collectSecrets(v.Field(i), out)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			collectSecrets(v.Index(i), out)
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			collectSecrets(it.Value(), out)
		}
	}
}
