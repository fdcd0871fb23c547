package engine_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/sim"
)

// A workflow step whose cloud stops answering tells the channel at once
// what failed and until when it will be tried, goes on when the cloud is
// back, and fails at the deadline if it never is.
func TestWorkflowStepRetriedUntilDeadline(t *testing.T) {
	t.Parallel()
	run := func(h *harness) *switchboard.Run {
		return &switchboard.Run{ID: "r-retry", Workflow: "gone", Cloud: "main", Request: switchboard.Request{ChannelID: "C0OPS"},
			Plan: []switchboard.Step{
				{Kind: "describe", ID: "inst", With: json.RawMessage(`{"instance":"` + idWeb1 + `"}`)},
				{Kind: "notify", With: json.RawMessage(`{"text":"found {{ steps.inst.name }}"}`)},
			}}
	}
	t.Run("back before the deadline", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, fleet(), nil)
		h.cloud.InjectFault(sim.Fault{Action: "DescribeInstances", Times: 8})
		r := run(h)
		got := texts(h.finish(r))
		if len(got) != 2 || !strings.HasPrefix(got[0], "Step 1 (describe) failed: ") || !strings.Contains(got[0], "I'll keep trying until ") || got[1] != "found web-1" {
			t.Errorf("said %q", got)
		}
		if r.State != switchboard.RunSucceeded {
			t.Errorf("run %s: %s", r.State, r.Error)
		}
		if _, left := r.Vars["_retry"]; left {
			t.Errorf("the retry state outlived the step")
		}
	})
	t.Run("never back", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, fleet(), nil)
		h.runner.RetryFor = 10 * time.Minute
		h.cloud.InjectFault(sim.Fault{Action: "DescribeInstances"})
		r := run(h)
		start := h.clock.Now()
		got := texts(h.finish(r))
		if len(got) != 2 || !strings.HasPrefix(got[1], "Step 1 (describe) kept failing for 10m0s: ") {
			t.Errorf("said %q", got)
		}
		if r.State != switchboard.RunFailed || h.clock.Now().Sub(start) > 11*time.Minute {
			t.Errorf("run %s after %s", r.State, h.clock.Now().Sub(start))
		}
	})
}
