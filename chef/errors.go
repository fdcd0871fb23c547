package chef

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chef/chef"

	"github.com/switchboardhq/switchboard"
)

// statusOf returns the HTTP status the Chef server answered err with, or 0
// when it did not answer.
func statusOf(err error) int {
	var cerr *chef.ErrorResponse
	if errors.As(err, &cerr) && cerr.Response != nil {
		return cerr.StatusCode()
	}
	return 0
}

func isNotFound(err error) bool { return statusOf(err) == http.StatusNotFound }

// fail turns a failed request into the domain's error: EUNAVAILABLE (the
// engine retries) when the server did not answer or failed itself,
// ETHROTTLED when it asked to slow down, EUNAUTHORIZED and EFORBIDDEN with
// what to fix, EINVALID for anything else it refused. action says what was
// asked, like "delete node web-7". The key never appears in it.
func (c *Client) fail(ctx context.Context, err error, action string) error {
	if ctxErr := ctx.Err(); ctxErr != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("chef %s: %w", action, ctxErr)
	}
	status := statusOf(err)
	var e *switchboard.Error
	switch {
	case status == http.StatusUnauthorized:
		e = switchboard.Errorf(switchboard.EUNAUTHORIZED, "%s did not accept the signature of client %s: check that the Chef key is that client's private key, that the client exists on the server, and that this machine's clock is right.",
			c.where, c.opts.ClientName)
	case status == http.StatusForbidden:
		e = switchboard.Errorf(switchboard.EFORBIDDEN, "%s does not let client %s %s: make it an admin client (Chef 11) or a member of the admins group.",
			c.where, c.opts.ClientName, action)
	case status == http.StatusTooManyRequests:
		e = switchboard.Errorf(switchboard.ETHROTTLED, "%s asked Switchboard to slow down (HTTP 429) when asked to %s.", c.where, action)
		var cerr *chef.ErrorResponse
		if errors.As(err, &cerr) {
			if s, err := strconv.Atoi(cerr.Response.Header.Get("Retry-After")); err == nil && s > 0 {
				e.RetryAfter = time.Duration(s) * time.Second
			}
		}
	case status >= 500:
		e = switchboard.Errorf(switchboard.EUNAVAILABLE, "%s failed (HTTP %d) when asked to %s; Switchboard will try again.", c.where, status, action)
	case status != 0:
		e = switchboard.Errorf(switchboard.EINVALID, "%s refused to %s (HTTP %d%s).", c.where, action, status, serverSaid(err))
	default:
		// No answer: refused, reset, timed out, or not HTTP at all.
		e = switchboard.Errorf(switchboard.EUNAVAILABLE, "%s did not answer when asked to %s (%v); Switchboard will try again.", c.where, action, err)
	}
	return fmt.Errorf("chef %s: %w", action, e)
}

// serverSaid is the Chef server's own error message, as ": message".
func serverSaid(err error) string {
	var cerr *chef.ErrorResponse
	if errors.As(err, &cerr) && cerr.StatusMsg() != "" {
		return ": " + cerr.StatusMsg()
	}
	return ""
}
