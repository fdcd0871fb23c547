package engine_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/engine"
)

// The fleet view lists every instance of a cloud with the commands that may
// touch it: /ec2 only what its instances cover, a command-started workflow
// anything in its cloud. Answers are kept for a moment, so pollers share
// one describe.
func TestFleetDescribe(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleet(), nil)
	f := &engine.Fleet{
		Providers: h.runner.Providers,
		Commands:  h.commands.Specs,
		Workflows: []switchboard.WorkflowSpec{{Name: "restart", Cloud: "main", Trigger: switchboard.TriggerSpec{Command: "/restart"}},
			{Name: "nightly", Cloud: "main", Trigger: switchboard.TriggerSpec{Schedule: &switchboard.ScheduleTrigger{Cron: "0 3 * * *"}}}},
		NowFunc: h.clock.Now,
	}
	clouds := f.Describe(context.Background())
	if len(clouds) != 1 || clouds[0].Name != "main" || clouds[0].Error != "" {
		t.Fatalf("clouds = %+v", clouds)
	}
	got := map[string][]string{}
	var names []string
	for _, inst := range clouds[0].Instances {
		got[inst.Name] = inst.Commands
		names = append(names, inst.Name)
	}
	if !slices.Equal(names, []string{"db", "tools", "web-1", "web-2"}) {
		t.Errorf("instances in order %q, want by name", names)
	}
	for name, want := range map[string][]string{
		"tools": {"/ec2", "/restart"},
		"web-1": {"/ec2", "/restart"},
		"db":    {"/restart"},
	} {
		if !slices.Equal(got[name], want) {
			t.Errorf("%s may be touched by %q, want %q", name, got[name], want)
		}
	}
	calls := h.calls("DescribeInstances")
	f.Describe(context.Background())
	if n := h.calls("DescribeInstances"); n != calls {
		t.Errorf("a second look within MaxAge described the cloud again")
	}
	h.clock.Advance(3 * time.Second)
	f.Describe(context.Background())
	if n := h.calls("DescribeInstances"); n != calls+1 {
		t.Errorf("a look after MaxAge did not describe the cloud again (%d calls, had %d)", n, calls)
	}
}
