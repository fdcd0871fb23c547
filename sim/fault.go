package sim

import (
	"fmt"
	"slices"
)

// Fault makes matching calls fail, for tests of what Switchboard does when
// the cloud does.
type Fault struct {
	// Action is the EC2 action that fails ("StartInstances", "RunInstances",
	// ...); empty means every action.
	Action string
	// IDs, when set, limits the fault to calls naming (or, for
	// DescribeInstances, returning) one of these instances.
	IDs []string
	// Err is what the call returns; nil means EC2's InternalError, a
	// *switchboard.CloudError of kind EUNAVAILABLE.
	Err error
	// Times is how many calls fail before the fault is spent; 0 means every
	// matching call, until ClearFaults.
	Times int
	// Applied makes the call take effect before it fails, like a response
	// lost on its way back: the case idempotency keys exist for.
	Applied bool
}

type fault struct {
	Fault
	left int // calls left to fail when Times > 0
}

// InjectFault adds a fault. Faults are checked in the order added, after a
// call has passed throttling and EC2's own checks of its parameters. It
// panics on an action the cloud does not answer, so a typo cannot make a
// test pass.
func (c *Cloud) InjectFault(f Fault) {
	if f.Action != "" && !slices.Contains(actions, f.Action) {
		panic(fmt.Sprintf("sim: InjectFault: unknown action %q; want one of %v", f.Action, actions))
	}
	f.IDs = slices.Clone(f.IDs)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = append(c.faults, &fault{Fault: f, left: f.Times})
}

// ClearFaults removes every fault.
func (c *Cloud) ClearFaults() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = nil
}

// takeFault returns the first fault matching a call of action touching ids,
// spending one of its times. The caller holds c.mu.
func (c *Cloud) takeFault(action string, ids []string) *fault {
	for i, f := range c.faults {
		if f.Action != "" && f.Action != action {
			continue
		}
		if len(f.IDs) > 0 && !slices.ContainsFunc(ids, func(id string) bool { return slices.Contains(f.IDs, id) }) {
			continue
		}
		if f.Times > 0 {
			f.left--
			if f.left == 0 {
				c.faults = slices.Delete(c.faults, i, i+1)
			}
		}
		return f
	}
	return nil
}

func (f *fault) error(ids []string) error {
	if f.Err != nil {
		return f.Err
	}
	return errInternal(slices.Clone(ids))
}
