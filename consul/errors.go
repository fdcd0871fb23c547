package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/switchboardhq/switchboard"
)

// errHidden is a read whose answer Consul filtered by ACLs
// (X-Consul-Results-Filtered-By-ACLs): acting on it would take a node the
// token may not see for one that is not there.
var errHidden = errors.New("results filtered by ACLs")

// fail turns a failed call into the domain's error: EUNAVAILABLE (the engine
// retries) when Consul did not answer or failed itself, ETHROTTLED when it
// asked to slow down, EUNAUTHORIZED for a token Consul does not know,
// EFORBIDDEN for one that may not do what was asked, EINVALID for anything
// else it refused. action says what was asked, like "deregister node
// web-7". The token never appears in it.
func (c *Client) fail(ctx context.Context, err error, action string) error {
	if ctxErr := ctx.Err(); ctxErr != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("consul %s: %w", action, ctxErr)
	}
	var se api.StatusError
	isStatus := errors.As(err, &se)
	body := c.redact(se.Body)
	var e *switchboard.Error
	switch {
	case errors.Is(err, errHidden):
		e = switchboard.Errorf(switchboard.EFORBIDDEN, "%s hides what Switchboard needs to %s from its token (ACLs): give the token node:read and session:read, and node:write and session:write to clean up.",
			c.where, action)
	case isStatus && (se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden && strings.Contains(body, "ACL not found")):
		e = switchboard.Errorf(switchboard.EUNAUTHORIZED, "%s does not know the ACL token Switchboard sends: set the consul token to the secret ID of an existing ACL token.", c.where)
	case isStatus && se.Code == http.StatusForbidden:
		e = switchboard.Errorf(switchboard.EFORBIDDEN, "%s does not let Switchboard's token %s (%s): give it node:write and session:write.",
			c.where, action, clip(body))
	case isStatus && strings.Contains(body, "No path to datacenter"):
		// An answer of 500, but no retry will find the datacenter.
		e = switchboard.Errorf(switchboard.EINVALID, "%s knows no datacenter %q: check the consul datacenter setting.", c.where, c.opts.Datacenter)
	case isStatus && se.Code == http.StatusTooManyRequests:
		e = switchboard.Errorf(switchboard.ETHROTTLED, "%s asked Switchboard to slow down (HTTP 429) when asked to %s.", c.where, action)
	case isStatus && se.Code >= 500:
		e = switchboard.Errorf(switchboard.EUNAVAILABLE, "%s failed (HTTP %d: %s) when asked to %s; Switchboard will try again.", c.where, se.Code, clip(body), action)
	case isStatus:
		e = switchboard.Errorf(switchboard.EINVALID, "%s refused to %s (HTTP %d: %s).", c.where, action, se.Code, clip(body))
	default:
		// No answer (refused, reset, timed out), or one that was not
		// Consul's.
		e = switchboard.Errorf(switchboard.EUNAVAILABLE, "%s did not answer when asked to %s (%s); Switchboard will try again.", c.where, action, c.redact(err.Error()))
	}
	return fmt.Errorf("consul %s: %w", action, e)
}

// redact removes the token from text Consul or the network sent back; none
// is known to echo it, and none shall.
func (c *Client) redact(s string) string {
	if c.opts.Token == "" {
		return s
	}
	return strings.ReplaceAll(s, c.opts.Token, "[token]")
}

func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		return s[:200] + "…"
	}
	if s == "" {
		return "no message"
	}
	return s
}
