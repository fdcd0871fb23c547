package consul_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/consul"
	"github.com/switchboardhq/switchboard/consul/consultest"
	"github.com/switchboardhq/switchboard/engine"
	"github.com/switchboardhq/switchboard/steps"
)

// The step runs in the real engine, which renders its parameters, checks
// the workflow's expressions against its declared outputs and keeps the
// outputs for the report.

const mgmtToken = "7c1e4a2b-9d3f-4e5a-8b6c-0d1e2f3a4b5c"

func stepWorkflow(with string) switchboard.WorkflowSpec {
	return switchboard.WorkflowSpec{Name: "cleanup", Steps: []switchboard.StepSpec{
		{ID: "inst", Kind: "set", With: json.RawMessage(`{"name": "{{ event.args[0] }}"}`)},
		{ID: "consul", Kind: "consul_deregister", With: json.RawMessage(with)},
		{Kind: "notify", With: json.RawMessage(`{"text": "{{ steps.inst.name }} terminated: removed {{ steps.consul.summary }}; services {{ steps.consul.services }}; locks {{ steps.consul.locks }}."}`)},
	}}
}

type stepResult struct {
	run     *switchboard.Run
	out     switchboard.Outcome
	err     error
	outputs struct {
		Node         string   `json:"node"`
		Deregistered bool     `json:"deregistered"`
		Services     []string `json:"services"`
		Checks       []string `json:"checks"`
		Sessions     []string `json:"sessions"`
		Locks        []string `json:"locks"`
		Summary      string   `json:"summary"`
	}
}

// runStep checks the workflow as config would, then advances a run of it,
// started by "/cleanup NODE", once.
func runStep(t *testing.T, c *consul.Client, spec switchboard.WorkflowSpec, node string) stepResult {
	t.Helper()
	reg := switchboard.NewRegistry(append(steps.Builtin(), consul.DeregisterStep(c))...)
	if problems := engine.CheckWorkflow(reg, spec); len(problems) > 0 {
		t.Fatalf("CheckWorkflow: %+v", problems)
	}
	run := &switchboard.Run{ID: "run-1", Workflow: spec.Name, Plan: engine.Plan(spec),
		Request: switchboard.Request{Source: "slack", Command: "/cleanup", Text: node, ChannelID: "C0OPS"}}
	r := stepResult{run: run}
	r.out, r.err = (&engine.Runner{Steps: reg}).Advance(context.Background(), run, saver{})
	if b, ok := run.Vars["consul"]; ok {
		if err := json.Unmarshal(b, &r.outputs); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

type saver struct{}

func (saver) SaveRun(context.Context, *switchboard.Run) error { return nil }

func (r stepResult) said() []string {
	var texts []string
	for _, m := range r.out.Messages {
		texts = append(texts, m.Text)
	}
	return texts
}

func (r stepResult) audited() []string {
	var lines []string
	for _, a := range r.out.Audit {
		if strings.HasPrefix(a.Subject, "consul ") {
			lines = append(lines, a.Subject+": "+a.Detail)
		}
	}
	return lines
}

func TestDeregisterStep(t *testing.T) {
	t.Parallel()
	srv := consultest.New(t, consultest.Options{Token: mgmtToken})
	p := peer{addr: srv.Addr, token: mgmtToken}
	f := p.seed(t)
	c := p.client(t, mgmtToken, "")
	spec := stepWorkflow(`{"node": "{{ steps.inst.name }}"}`)

	r := runStep(t, c, spec, f.node)
	if r.err != nil || r.run.State != switchboard.RunSucceeded {
		t.Fatalf("run %s (%s), %v", r.run.State, r.run.Error, r.err)
	}
	o := r.outputs
	if o.Node != f.node || !o.Deregistered || !reflect.DeepEqual(o.Services, []string{"web", "web-admin"}) ||
		!reflect.DeepEqual(o.Sessions, sorted(f.releaseSession, f.deleteSession)) || !reflect.DeepEqual(o.Locks, []string{f.deleteKey, f.releaseKey}) {
		t.Errorf("outputs %+v", o)
	}
	want := []string{fmt.Sprintf("%s terminated: removed Consul node and 2 sessions (released %s; deleted %s); services web, web-admin; locks %s, %s.",
		f.node, f.releaseKey, f.deleteKey, f.deleteKey, f.releaseKey)}
	if !reflect.DeepEqual(r.said(), want) {
		t.Errorf("said %q\nwant %q", r.said(), want)
	}
	wantAudit := []string{
		"consul destroy session " + f.releaseSession + ": node " + f.node + "; released " + f.releaseKey,
		"consul destroy session " + f.deleteSession + ": node " + f.node + "; deleted " + f.deleteKey,
		"consul deregister node " + f.node + ": services: web, web-admin",
	}
	if f.deleteSession < f.releaseSession {
		wantAudit[0], wantAudit[1] = wantAudit[1], wantAudit[0]
	}
	if !reflect.DeepEqual(r.audited(), wantAudit) {
		t.Errorf("audit %q\nwant %q", r.audited(), wantAudit)
	}

	// Again: nothing is left, which is success.
	r = runStep(t, c, spec, f.node)
	if r.err != nil || r.run.State != switchboard.RunSucceeded {
		t.Fatalf("second run %s (%s), %v", r.run.State, r.run.Error, r.err)
	}
	if o := r.outputs; o.Deregistered || len(o.Sessions) != 0 || len(o.Locks) != 0 || o.Summary != "no Consul node" || len(r.audited()) != 0 {
		t.Errorf("second run: outputs %+v, audit %q", o, r.audited())
	}
}

func TestDeregisterStepDryRun(t *testing.T) {
	t.Parallel()
	srv := consultest.New(t, consultest.Options{Token: mgmtToken})
	p := peer{addr: srv.Addr, token: mgmtToken}
	f := p.seed(t)

	r := runStep(t, p.client(t, mgmtToken, ""), stepWorkflow(`{"node": "{{ steps.inst.name }}", "dry_run": true}`), f.node)
	if r.err != nil || r.run.State != switchboard.RunSucceeded {
		t.Fatalf("run %s (%s), %v", r.run.State, r.run.Error, r.err)
	}
	if o := r.outputs; !o.Deregistered || len(o.Sessions) != 2 || len(o.Locks) != 2 || !strings.HasPrefix(o.Summary, "would remove ") {
		t.Errorf("outputs %+v", o)
	}
	if len(r.audited()) != 0 {
		t.Errorf("a dry run audited %q", r.audited())
	}
	p.untouched(t, f)
}

func TestDeregisterStepFailures(t *testing.T) {
	t.Parallel()
	srv := consultest.New(t, consultest.Options{Token: mgmtToken})
	p := peer{addr: srv.Addr, token: mgmtToken}
	f := p.seed(t)
	const wrong = "0badc0de-1111-4000-8000-000000000000"

	// A token Consul does not know: final, said in a sentence without it.
	r := runStep(t, p.client(t, wrong, ""), stepWorkflow(`{"node": "{{ steps.inst.name }}"}`), f.node)
	if r.err != nil || r.run.State != switchboard.RunFailed {
		t.Fatalf("run %s, %v; want failed", r.run.State, r.err)
	}
	if want := "Could not clean up Consul node " + f.node + ": Consul at " + srv.Addr + " does not know the ACL token"; !strings.HasPrefix(r.run.Error, want) {
		t.Errorf("error %q, want it to start %q", r.run.Error, want)
	}
	if strings.Contains(r.run.Error, wrong) {
		t.Errorf("the error tells the token: %s", r.run.Error)
	}

	// A template that renders to nothing.
	r = runStep(t, p.client(t, mgmtToken, ""), stepWorkflow(`{"node": "{{ event.subject }}"}`), f.node)
	if r.run.State != switchboard.RunFailed || !strings.Contains(r.run.Error, "node is empty") {
		t.Errorf("run %s (%s), %v; want failed for the empty node", r.run.State, r.run.Error, r.err)
	}

	// Consul down: transient, the channel is told it will be retried, and the run parks.
	srv.Close()
	r = runStep(t, p.client(t, mgmtToken, ""), stepWorkflow(`{"node": "{{ steps.inst.name }}"}`), f.node)
	if r.err != nil || r.run.State != switchboard.RunWaiting || r.out.Wait <= 0 || len(r.out.Messages) != 1 ||
		!strings.Contains(r.out.Messages[0].Text, "I'll keep trying until") {
		t.Errorf("run %s, %v, said %+v; want it parked with a word in the channel", r.run.State, r.err, r.out.Messages)
	}
}
