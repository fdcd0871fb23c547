package engine

import (
	"context"
	"fmt"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/steps"
)

// The cost of expressions per run: a workflow of ten steps whose every step
// has a condition and a template over earlier outputs, advanced from start
// to end; and a command's policy of three rules checked for one instance.
// Results and the command are in bench/EXPRESSIONS.md.

type nopSaver struct{}

func (nopSaver) SaveRun(context.Context, *switchboard.Run) error { return nil }

func tenSteps() []switchboard.Step {
	plan := []switchboard.Step{{Kind: "set", ID: "s0", With: []byte(`{"v":"{{ event.user }}"}`)}}
	for i := 1; i < 10; i++ {
		plan = append(plan, switchboard.Step{Kind: "set", ID: fmt.Sprintf("s%d", i), If: fmt.Sprintf(`steps.s%d.v != ""`, i-1),
			With: fmt.Appendf(nil, `{"v":"{{ steps.s%d.v + '-%d' }}"}`, i-1, i)})
	}
	return plan
}

func BenchmarkAdvanceTenStepWorkflow(b *testing.B) {
	r := &Runner{Steps: switchboard.NewRegistry(steps.Builtin()...)}
	plan := tenSteps()
	ctx := context.Background()
	for b.Loop() {
		run := &switchboard.Run{ID: "r-1", Workflow: "w", Plan: plan, Request: switchboard.Request{UserID: "U1"}}
		if _, err := r.Advance(ctx, run, nopSaver{}); err != nil || run.State != switchboard.RunSucceeded {
			b.Fatalf("run %s: %v %s", run.State, err, run.Error)
		}
	}
}

func BenchmarkPolicy(b *testing.B) {
	rules := []switchboard.PolicyRule{
		{If: `instance.tags["env"] == "prod" && action == "terminate"`, Deny: "no"},
		{If: `instance.tags["env"] == "prod" && user != "U0OPS1"`, Approval: &switchboard.ApprovalRule{Approvers: []string{"U0OPS1"}}},
		{If: `instance.state == "running" && command == "/ec2"`, Deny: "busy"},
	}
	in := switchboard.PolicyInput{Action: "stop", User: "U1", Channel: "C1", Command: "/ec2",
		Instance: switchboard.Instance{ID: "i-0123456789abcdef0", State: switchboard.StateStopped, Tags: map[string]string{"env": "dev"}}}
	for b.Loop() {
		if r, err := policyFor(rules, in); err != nil || r != nil {
			b.Fatal(r, err)
		}
	}
}
