package engine_test

import (
	"encoding/json"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/sim"
)

// A run records how each of its steps went, for the console's run detail:
// a step whose condition does not hold is skipped, one that keeps failing
// waits and then fails, and the on_error steps after it run. A workflow
// that finishes has the last thing it said as its result.
func TestStepRecords(t *testing.T) {
	t.Parallel()
	plan := []switchboard.Step{
		{Kind: "notify", If: `false`, With: json.RawMessage(`{"text":"never"}`)},
		{Kind: "describe", ID: "inst", With: json.RawMessage(`{"instance":"` + idWeb1 + `"}`)},
		{Kind: "notify", With: json.RawMessage(`{"text":"found {{ steps.inst.name }}"}`)},
	}
	t.Run("succeeded", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, fleet(), nil)
		r := &switchboard.Run{ID: "r-steps", Workflow: "find", Cloud: "main", Request: switchboard.Request{ChannelID: "C0OPS"}, Plan: plan}
		h.finish(r)
		if r.State != switchboard.RunSucceeded || r.Result != "found web-1" {
			t.Errorf("run %s with result %q, want succeeded with %q", r.State, r.Result, "found web-1")
		}
		want := []string{switchboard.StepSkipped, switchboard.StepSucceeded, switchboard.StepSucceeded}
		if len(r.Steps) != len(want) {
			t.Fatalf("step records = %+v, want %d", r.Steps, len(want))
		}
		for i, st := range r.Steps {
			if st.Index != i || st.State != want[i] || st.Kind != plan[i].Kind || st.ID != plan[i].ID || st.StartedAt.IsZero() || st.FinishedAt.IsZero() {
				t.Errorf("step %d = %+v, want %s", i, st, want[i])
			}
		}
	})
	t.Run("failed", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, fleet(), nil)
		h.cloud.InjectFault(sim.Fault{Action: "DescribeInstances"})
		r := &switchboard.Run{ID: "r-steps-failed", Workflow: "find", Cloud: "main", Request: switchboard.Request{ChannelID: "C0OPS"},
			Plan: append(append([]switchboard.Step{}, plan...), switchboard.Step{Kind: "notify", Section: "on_error", With: json.RawMessage(`{"text":"oops"}`)})}
		h.finish(r)
		if r.State != switchboard.RunFailed {
			t.Fatalf("run %s, want failed", r.State)
		}
		got := make([]string, len(r.Steps))
		for i, st := range r.Steps {
			got[i] = st.State
		}
		if len(r.Steps) != 3 || got[0] != switchboard.StepSkipped || got[1] != switchboard.StepFailed || got[2] != switchboard.StepSucceeded || r.Steps[2].Index != 3 {
			t.Errorf("step records = %+v, want skipped, failed, then the on_error step", r.Steps)
		}
	})
}
