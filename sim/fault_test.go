package sim_test

import (
	"context"
	"errors"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/sim"
)

func TestFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	errBoom := errors.New("boom")

	t.Run("times, then success", func(t *testing.T) {
		t.Parallel()
		c, _ := setup(t, sim.Options{Instances: fleet()})
		c.InjectFault(sim.Fault{Action: "StartInstances", Times: 2})
		for range 2 {
			_, err := c.StartInstances(ctx, []string{idStopped})
			wantCloudError(t, err, "InternalError", switchboard.EUNAVAILABLE, idStopped)
			if got := state(t, c, idStopped); got != switchboard.StateStopped {
				t.Fatalf("a failed start changed the state to %s", got)
			}
		}
		if _, err := c.StartInstances(ctx, []string{idStopped}); err != nil {
			t.Errorf("third start: %v", err)
		}
		if s := c.Stats(); s.Failed != 2 || s.Calls["StartInstances"] != 3 {
			t.Errorf("stats = %+v, want 3 calls, 2 failed", s)
		}
	})

	t.Run("only calls touching the ids", func(t *testing.T) {
		t.Parallel()
		c, _ := setup(t, sim.Options{Instances: fleet()})
		c.InjectFault(sim.Fault{IDs: []string{idStopped}, Err: errBoom})
		if err := c.RebootInstances(ctx, []string{idRunning}); err != nil {
			t.Errorf("reboot of another instance: %v", err)
		}
		if _, err := c.StartInstances(ctx, []string{idRunning, idStopped}); !errors.Is(err, errBoom) {
			t.Errorf("start naming the faulty id: err = %v, want %v", err, errBoom)
		}
		if _, err := c.DescribeInstances(ctx, switchboard.Filter{}); !errors.Is(err, errBoom) {
			t.Errorf("describe returning the faulty id: err = %v, want %v", err, errBoom)
		}
		if _, err := c.DescribeInstances(ctx, switchboard.Filter{IDs: []string{idRunning}}); err != nil {
			t.Errorf("describe of another instance: %v", err)
		}
		c.ClearFaults()
		if _, err := c.StartInstances(ctx, []string{idStopped}); err != nil {
			t.Errorf("after ClearFaults: %v", err)
		}
	})

	t.Run("applied: the change happens, the answer is lost", func(t *testing.T) {
		t.Parallel()
		c, _ := setup(t, sim.Options{Instances: fleet()})
		c.InjectFault(sim.Fault{Action: "StopInstances", Times: 1, Applied: true})
		_, err := c.StopInstances(ctx, []string{idRunning}, switchboard.StopOptions{})
		wantCloudError(t, err, "InternalError", switchboard.EUNAVAILABLE)
		if got := state(t, c, idRunning); got != switchboard.StateStopping {
			t.Errorf("state after an applied fault = %s, want stopping", got)
		}
	})

	t.Run("unknown action panics", func(t *testing.T) {
		t.Parallel()
		c, _ := setup(t, sim.Options{})
		defer func() {
			if recover() == nil {
				t.Error("InjectFault with a misspelt action did not panic")
			}
		}()
		c.InjectFault(sim.Fault{Action: "StartInstance"})
	})
}
