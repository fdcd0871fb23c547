package fleet_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/fleet"
	"github.com/switchboardhq/switchboard/sim"
	"github.com/switchboardhq/switchboard/steps"
)

// The user story: `/ec2 stop env=dev` on 2,000 development instances, 12 of
// them already stopped and one still booting (pending), which EC2 refuses to
// stop with IncorrectInstanceState. The simulated cloud has EC2's token
// buckets and the wrapper EC2Limits; both run on one fake clock, so every wait
// for a token or a backoff is virtual and the test takes milliseconds.
const (
	fleetSize = 2000
	pendingAt = 1234 // the instance still booting
)

func alreadyStopped(i int) bool { return i%167 == 5 } // 12 of the 2,000, spread out

// stopRun is what one stop of the 2,000 did.
type stopRun struct {
	outcomes []steps.Outcome
	cloud    sim.Stats   // calls the cloud answered during the command
	fleet    fleet.Stats // what the wrapper did
	took     time.Duration
}

// stop2000 runs the command the way the engine does: describe the targets by
// tag, stop them, and after the stop has had time to finish, describe them
// again by id to report each one. neighbour makes another client in the same
// account spend the whole StopInstances bucket just before, as a second tool
// or a person in the console would, so the cloud throttles us anyway.
func stop2000(tb testing.TB, neighbour bool) stopRun {
	tb.Helper()
	ctx := context.Background()
	b := setup(tb, sim.Options{
		Instances: instances(fleetSize, func(i int) switchboard.InstanceState {
			switch {
			case i == pendingAt:
				return switchboard.StatePending
			case alreadyStopped(i):
				return switchboard.StateStopped
			}
			return switchboard.StateRunning
		}),
		PendingDuration: time.Hour, // still booting when the stop comes
	}, fleet.Options{Limits: fleet.EC2Limits()}, nil)
	if neighbour {
		for range 50 {
			if _, err := b.cloud.StopInstances(ctx, []string{id(5)}, switchboard.StopOptions{}); err != nil {
				tb.Fatalf("the neighbour's stop: %v", err)
			}
		}
	}
	before := b.cloud.Stats()

	found, err := b.fleet.DescribeInstances(ctx, switchboard.Filter{Tags: map[string]string{"env": "dev"}})
	if err != nil || len(found) != fleetSize {
		tb.Fatalf("describe env=dev: %d instances, %v; want %d", len(found), err, fleetSize)
	}
	labels := make(map[string]string, len(found))
	asked := make([]string, len(found))
	for i, inst := range found {
		labels[inst.ID] = inst.Label()
		asked[i] = inst.ID
	}

	changes, err := b.fleet.StopInstances(ctx, asked, switchboard.StopOptions{})
	failed := steps.Failures(err)
	if err != nil && failed == nil {
		tb.Fatalf("stop failed as a whole: %v", err)
	}

	// The engine waits for the stops to finish, then looks again.
	b.clock.Advance(sim.DefaultStoppingDuration)
	var acted []string
	for _, c := range changes {
		if c.Current != c.Previous {
			acted = append(acted, c.ID)
		}
	}
	now, err := b.fleet.DescribeInstances(ctx, switchboard.Filter{IDs: acted})
	if err != nil {
		tb.Fatalf("describe the stopped instances: %v", err)
	}
	state := make(map[string]switchboard.InstanceState, len(now))
	for _, inst := range now {
		state[inst.ID] = inst.State
	}

	var out []steps.Outcome
	for _, c := range changes {
		o := steps.Outcome{ID: c.ID, Label: labels[c.ID]}
		switch {
		case c.Previous == switchboard.StateStopped && c.Current == switchboard.StateStopped:
			o.Result = "already stopped"
		case state[c.ID] == switchboard.StateStopped:
			o.Result = "stopped"
		default:
			o.Result, o.Detail = "still "+string(state[c.ID]), "check it with `/ec2 status "+c.ID+"`"
		}
		out = append(out, o)
	}
	for id, err := range failed {
		out = append(out, steps.Outcome{ID: id, Label: labels[id], Result: steps.ResultFailed, Detail: steps.Reason(err)})
	}

	after := b.cloud.Stats()
	calls := make(map[string]int)
	for action, n := range after.Calls {
		calls[action] = n - before.Calls[action]
	}
	return stopRun{
		outcomes: out,
		cloud:    sim.Stats{Calls: calls, Throttled: after.Throttled - before.Throttled, Failed: after.Failed - before.Failed},
		fleet:    b.fleet.Stats(),
		took:     b.clock.Now().Sub(t0),
	}
}

func TestStop2000(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		neighbour bool
	}{
		{"alone in the account", false},
		{"bucket spent by another client", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			run := stop2000(t, tt.neighbour)

			// Every instance accounted for, once.
			seen := make(map[string]bool)
			count := make(map[string]int)
			for _, o := range run.outcomes {
				if seen[o.ID] {
					t.Errorf("%s reported twice", o.ID)
				}
				seen[o.ID] = true
				count[o.Result]++
			}
			for i := range fleetSize {
				if !seen[id(i)] {
					t.Errorf("%s is missing from the answer", id(i))
				}
			}
			if count["stopped"] != 1987 || count["already stopped"] != 12 || count[steps.ResultFailed] != 1 || len(count) != 3 {
				t.Errorf("outcomes %v, want 1,987 stopped, 12 already stopped, 1 failed", count)
			}
			for _, o := range run.outcomes {
				if o.Result == steps.ResultFailed && (o.ID != id(pendingAt) || o.Detail != "IncorrectInstanceState") {
					t.Errorf("failed: %+v, want %s with IncorrectInstanceState", o, id(pendingAt))
				}
			}
			answer := steps.Summary(run.outcomes)
			want := fmt.Sprintf("Stopped 1,987; already stopped 12; failed 1: dev-%d (%s) IncorrectInstanceState.", pendingAt, id(pendingAt))
			if answer != want {
				t.Errorf("answer = %q, want %q", answer, want)
			}

			// 20 batches of 100, one more for the 99 beside the pending
			// instance; one describe by tag, 10 by id.
			c := run.cloud
			if stops := c.Calls["StopInstances"]; stops != 21+c.Throttled {
				t.Errorf("%d StopInstances calls, want 21 + %d throttled", stops, c.Throttled)
			}
			if c.Calls["DescribeInstances"] != 11 {
				t.Errorf("%d DescribeInstances calls, want 11", c.Calls["DescribeInstances"])
			}
			if (c.Throttled > 0) != tt.neighbour {
				t.Errorf("%d calls throttled; want throttling only when another client spent the bucket", c.Throttled)
			}
			// Once throttled, the wrapper empties its own bucket and keeps to
			// the cloud's refill instead of finding the limit call by call.
			if c.Throttled > 2 {
				t.Errorf("%d calls throttled, want at most 2", c.Throttled)
			}
			if run.fleet.Throttled != c.Throttled || run.fleet.Retries != c.Throttled {
				t.Errorf("the wrapper saw %d throttled and made %d retries; the cloud throttled %d", run.fleet.Throttled, run.fleet.Retries, c.Throttled)
			}

			t.Logf("answer: %s", answer)
			t.Logf("API calls: %d (StopInstances %d, DescribeInstances %d); throttled: %d; retries: %d; batches split: %d",
				c.Calls["StopInstances"]+c.Calls["DescribeInstances"], c.Calls["StopInstances"], c.Calls["DescribeInstances"],
				c.Throttled, run.fleet.Retries, run.fleet.Splits)
			t.Logf("virtual time: %s in all (%s waiting for tokens, %s backing off, %s for the stops to finish)",
				run.took, run.fleet.TokenWait, run.fleet.Backoff, sim.DefaultStoppingDuration)
		})
	}
}

func BenchmarkStop2000(b *testing.B) {
	for _, bb := range []struct {
		name      string
		neighbour bool
	}{{"alone", false}, {"neighbour", true}} {
		b.Run(bb.name, func(b *testing.B) {
			var calls, throttled, retries int
			var took time.Duration
			for b.Loop() {
				run := stop2000(b, bb.neighbour)
				calls += run.cloud.Calls["StopInstances"] + run.cloud.Calls["DescribeInstances"]
				throttled += run.cloud.Throttled
				retries += run.fleet.Retries
				took += run.took
			}
			n := float64(b.N)
			b.ReportMetric(float64(calls)/n, "calls/op")
			b.ReportMetric(float64(throttled)/n, "throttled/op")
			b.ReportMetric(float64(retries)/n, "retries/op")
			b.ReportMetric(took.Seconds()/n, "virtual-s/op")
		})
	}
}
