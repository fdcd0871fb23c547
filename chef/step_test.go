package chef_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/chef"
	"github.com/switchboardhq/switchboard/engine"
	"github.com/switchboardhq/switchboard/steps"
)

// The step runs in the real engine: it renders the templates, checks the
// workflow's expressions against the declared outputs, and keeps the
// outputs for the steps after it.

const terminated = `{"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
  "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-0abc1234def567890"],
  "detail": {"instance-id": "i-0abc1234def567890", "state": "terminated"}}`

// workflow is a cleanup workflow started by the EC2 event: the chef_delete
// step with the given parameters, then the channel report.
func workflow(with string) switchboard.WorkflowSpec {
	return switchboard.WorkflowSpec{Name: "cleanup", Steps: []switchboard.StepSpec{
		{ID: "chef", Kind: "chef_delete", With: json.RawMessage(with)},
		{Kind: "notify", With: json.RawMessage(`{"text": "{{ event.instances[0] }} terminated: removed {{ steps.chef.summary }}; deleted {{ steps.chef.deleted }}, already gone {{ steps.chef.absent }}."}`)},
	}}
}

type runResult struct {
	run     *switchboard.Run
	out     switchboard.Outcome
	err     error
	outputs struct {
		Node    string   `json:"node"`
		Deleted []string `json:"deleted"`
		Absent  []string `json:"absent"`
		Summary string   `json:"summary"`
	}
	saves int
}

// runWorkflow checks the workflow as config would, then advances a run of
// it for the terminated event once.
func runWorkflow(t *testing.T, c *chef.Client, spec switchboard.WorkflowSpec) runResult {
	t.Helper()
	reg := switchboard.NewRegistry(append(steps.Builtin(), chef.DeleteStep(c))...)
	if problems := engine.CheckWorkflow(reg, spec); len(problems) > 0 {
		t.Fatalf("CheckWorkflow: %+v", problems)
	}
	run := &switchboard.Run{ID: "run-1", Workflow: spec.Name, Plan: engine.Plan(spec), Request: switchboard.Request{
		Source: "aws", ChannelID: "C0OPS",
		Event: &switchboard.Event{Source: "aws", Kind: "EC2 Instance State-change Notification", Data: json.RawMessage(terminated)},
	}}
	s := &saver{}
	r := runResult{run: run}
	runner := &engine.Runner{Steps: reg}
	r.out, r.err = runner.Advance(context.Background(), run, s)
	r.saves = s.n
	if b, ok := run.Vars["chef"]; ok {
		if err := json.Unmarshal(b, &r.outputs); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

type saver struct{ n int }

func (s *saver) SaveRun(context.Context, *switchboard.Run) error { s.n++; return nil }

func (r runResult) said() []string {
	var texts []string
	for _, m := range r.out.Messages {
		texts = append(texts, m.Text)
	}
	return texts
}

func (r runResult) audited(prefix string) []string {
	var subjects []string
	for _, a := range r.out.Audit {
		if strings.HasPrefix(a.Subject, prefix) {
			subjects = append(subjects, a.Subject+" "+a.Outcome)
		}
	}
	return subjects
}

func TestDeleteStepByInstance(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.instance(t, "web-7", "i-0abc1234def567890")
	b.instance(t, "web-8", "i-0abc1234def567891")
	spec := workflow(`{"instance": "{{ event.instances[0] }}"}`)

	r := runWorkflow(t, b.client, spec)
	if r.err != nil || r.run.State != switchboard.RunSucceeded {
		t.Fatalf("run %s (%s), %v", r.run.State, r.run.Error, r.err)
	}
	if r.outputs.Node != "web-7" || !reflect.DeepEqual(r.outputs.Deleted, []string{"node", "client"}) || len(r.outputs.Absent) != 0 {
		t.Errorf("outputs %+v", r.outputs)
	}
	want := []string{"i-0abc1234def567890 terminated: removed Chef node and client; deleted node, client, already gone ."}
	if !reflect.DeepEqual(r.said(), want) {
		t.Errorf("said %q, want %q", r.said(), want)
	}
	if got, want := r.audited("chef "), []string{"chef delete node web-7 ok", "chef delete client web-7 ok"}; !reflect.DeepEqual(got, want) {
		t.Errorf("audit %q, want %q", got, want)
	}
	if r.saves != 1 {
		t.Errorf("%d checkpoints, want 1: the node the search found, before deleting it", r.saves)
	}
	if b.srv.HasNode(t, "web-7") || b.srv.HasClient(t, "web-7") || !b.srv.HasNode(t, "web-8") {
		t.Errorf("the wrong things were deleted")
	}

	// The event again: nothing has the instance id any more, which is
	// success.
	r = runWorkflow(t, b.client, spec)
	if r.err != nil || r.run.State != switchboard.RunSucceeded {
		t.Fatalf("second run %s (%s), %v", r.run.State, r.run.Error, r.err)
	}
	if r.outputs.Node != "" || len(r.outputs.Deleted) != 0 || !reflect.DeepEqual(r.outputs.Absent, []string{"node"}) || r.outputs.Summary != "no Chef node or client" {
		t.Errorf("second run's outputs %+v", r.outputs)
	}
	if got := r.audited("chef "); len(got) != 0 {
		t.Errorf("second run audited %q", got)
	}
}

func TestDeleteStepByName(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.CreateNode(t, "i-0abc1234def567890", nil) // a fleet that names nodes by instance id
	spec := workflow(`{"node": "{{ event.instances[0] }}"}`)

	r := runWorkflow(t, b.client, spec)
	if r.err != nil || r.run.State != switchboard.RunSucceeded {
		t.Fatalf("run %s (%s), %v", r.run.State, r.run.Error, r.err)
	}
	if r.outputs.Node != "i-0abc1234def567890" || !reflect.DeepEqual(r.outputs.Deleted, []string{"node"}) || !reflect.DeepEqual(r.outputs.Absent, []string{"client"}) {
		t.Errorf("outputs %+v", r.outputs)
	}
	if r.saves != 0 {
		t.Errorf("%d checkpoints; a named node needs none", r.saves)
	}
}

func TestDeleteStepDryRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.instance(t, "web-7", "i-0abc1234def567890")

	r := runWorkflow(t, b.client, workflow(`{"instance": "{{ event.instances[0] }}", "dry_run": true}`))
	if r.err != nil || r.run.State != switchboard.RunSucceeded {
		t.Fatalf("run %s (%s), %v", r.run.State, r.run.Error, r.err)
	}
	if r.outputs.Node != "web-7" || !reflect.DeepEqual(r.outputs.Deleted, []string{"node", "client"}) || !strings.HasPrefix(r.outputs.Summary, "would remove ") {
		t.Errorf("outputs %+v", r.outputs)
	}
	if got := r.audited("chef "); len(got) != 0 {
		t.Errorf("a dry run audited %q", got)
	}
	if !b.srv.HasNode(t, "web-7") || !b.srv.HasClient(t, "web-7") {
		t.Errorf("a dry run deleted something")
	}
}

func TestDeleteStepFailures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.instance(t, "web-7", "i-0abc1234def567890")
	b.instance(t, "web-8", "i-0abc1234def567890") // a second node claims the same instance
	b.srv.CreateNode(t, "db-1", nil)
	otherKey := newKey(t)

	// Two nodes with the instance's id: the step will not guess.
	r := runWorkflow(t, b.client, workflow(`{"instance": "{{ event.instances[0] }}"}`))
	if r.err != nil || r.run.State != switchboard.RunFailed {
		t.Fatalf("run %s, %v; want failed", r.run.State, r.err)
	}
	if want := "Chef nodes web-7, web-8 all have ec2_instance_id i-0abc1234def567890; name the one to delete with node:."; r.run.Error != want {
		t.Errorf("error %q, want %q", r.run.Error, want)
	}

	// A key the server refuses: final, said in a sentence without the key.
	r = runWorkflow(t, newClient(t, b.srv.URL, adminName, otherKey), workflow(`{"node": "db-1"}`))
	if r.err != nil || r.run.State != switchboard.RunFailed {
		t.Fatalf("run %s, %v; want failed", r.run.State, r.err)
	}
	if want := "Could not delete Chef node db-1: The Chef server at " + b.srv.URL + " did not accept the signature of client switchboard"; !strings.HasPrefix(r.run.Error, want) {
		t.Errorf("error %q, want it to start %q", r.run.Error, want)
	}
	noSecrets(t, switchboard.Errorf(switchboard.EINTERNAL, "%s", r.run.Error), otherKey)

	// The server down: transient, the channel is told it will be retried, and the run parks.
	b.srv.Stop()
	r = runWorkflow(t, b.client, workflow(`{"node": "db-1"}`))
	if r.err != nil || r.run.State != switchboard.RunWaiting || r.out.Wait <= 0 || len(r.out.Messages) != 1 ||
		!strings.Contains(r.out.Messages[0].Text, "I'll keep trying until") {
		t.Errorf("run %s, %v, said %+v; want it parked with a word in the channel", r.run.State, r.err, r.out.Messages)
	}
}

func TestDeleteStepParams(t *testing.T) {
	t.Parallel()
	st := chef.DeleteStep(nil)
	tests := []struct {
		params map[string]any
		param  string // the parameter a problem names; "" for none
	}{
		{map[string]any{"node": "{{ steps.inst.name }}"}, ""},
		{map[string]any{"instance": "{{ event.instances[0] }}", "dry_run": true}, ""},
		{map[string]any{}, "node"},
		{map[string]any{"dry_run": true}, "node"},
		{map[string]any{"node": "web-7", "instance": "i-0abc1234def567890"}, "instance"},
	}
	for _, tt := range tests {
		problems := st.CheckFunc(tt.params)
		switch {
		case tt.param == "" && len(problems) > 0:
			t.Errorf("%v: %+v", tt.params, problems)
		case tt.param != "" && (len(problems) != 1 || problems[0].Param != tt.param):
			t.Errorf("%v: %+v, want one problem with %s", tt.params, problems, tt.param)
		}
	}
}
