package main

import (
	"fmt"
	"log/slog"

	"github.com/switchboardhq/switchboard"
)

// redactAttr writes an attribute as the log will show it, every configured
// secret hidden: slog passes every attribute through it, the message and
// the ones a logger was made With included.
func redactAttr(a slog.Attr, secrets *switchboard.Secrets) slog.Attr {
	if secrets.Empty() {
		return a
	}
	switch v := a.Value.Resolve(); v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(secrets.Redact(v.String()))
	case slog.KindAny:
		// Errors and other values print as text; only one that holds a
		// secret is turned into its redacted text.
		text := fmt.Sprint(v.Any())
		if red := secrets.Redact(text); red != text {
			a.Value = slog.StringValue(red)
		}
	}
	return a
}
