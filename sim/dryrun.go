package sim

import (
	"context"
	"slices"

	"github.com/switchboardhq/switchboard"
)

// DryRun answers as EC2 does for a call with DryRun set: it checks the ids
// (malformed or unknown ones fail as the real call would) and the
// permission, and changes nothing. Options.DeniedActions lists the actions the
// simulated credentials may not take: those answer UnauthorizedOperation.
func (c *Cloud) DryRun(ctx context.Context, action string, ids []string) (err error) {
	call, ok := switchboard.DryRunCalls[action]
	if !ok {
		return switchboard.InvalidParameterValue("action", action, "A dry run covers start, stop, reboot and terminate.")
	}
	now, err := c.begin(ctx, call)
	if err != nil {
		return err
	}
	defer func() { err = c.end(err) }()
	if _, err := c.resolve(ids, now); err != nil {
		return err
	}
	if slices.Contains(c.denied, action) {
		return &switchboard.CloudError{Code: "UnauthorizedOperation", Kind: switchboard.EFORBIDDEN, IDs: ids,
			Message: "You are not authorized to perform this operation."}
	}
	return nil
}

// Deny takes actions (start, stop, reboot, terminate) away from the simulated
// credentials of a running cloud, as Options.DeniedActions does from the
// start: a dry run of them answers UnauthorizedOperation from now on. It is
// for tests that narrow the permissions after building their fleet, as an
// operator narrowing a policy would.
func (c *Cloud) Deny(actions ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range actions {
		if !slices.Contains(c.denied, a) {
			c.denied = append(c.denied, a)
		}
	}
}
