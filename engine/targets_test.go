package engine_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard"
)

// A workflow step's instance: takes what /ec2 takes: an alias of the
// instance commands on its cloud, an id, or a tag selector; anything else
// fails the step with /ec2's sentence instead of reaching the cloud.
func TestWorkflowStepsTakeCommandTargets(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, instance string
		wantIDs        []string
		wantError      string
	}{
		{"alias", "tools", []string{idTools}, ""},
		{"alias with tags", "web", []string{idWeb1, idWeb2}, ""},
		{"selector", "role=web", []string{idWeb1, idWeb2}, ""},
		{"id", idDB, []string{idDB}, ""},
		{"unknown", "nope", nil, `Step 1 (stop): I don't know the target "nope". Targets: tools, web, an instance id, or a tag selector like env=dev.`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, fleet(), nil)
			h.runner.Commands = []switchboard.CommandSpec{ec2}
			with, _ := json.Marshal(map[string]any{"instance": c.instance})
			run := &switchboard.Run{ID: "r-" + c.name, Workflow: "restart", Cloud: "main", State: switchboard.RunQueued,
				Request: switchboard.Request{Source: "console", ChannelID: "C0OPS"},
				Plan:    []switchboard.Step{{Kind: "stop", ID: "down", With: with}}}
			h.finish(run)
			if c.wantError != "" {
				if run.State != switchboard.RunFailed || !strings.Contains(run.Error, c.wantError) {
					t.Fatalf("run %s: %q, want it failed with %q", run.State, run.Error, c.wantError)
				}
				return
			}
			if run.State != switchboard.RunSucceeded {
				t.Fatalf("run %s: %s", run.State, run.Error)
			}
			for _, id := range c.wantIDs {
				if got := h.instance(id).State; got != switchboard.StateStopped && got != switchboard.StateStopping {
					t.Errorf("%s is %s, want it stopping or stopped", id, got)
				}
			}
		})
	}
}
