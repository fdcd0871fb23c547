package aws

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/engine"
	"github.com/switchboardhq/switchboard/steps"
)

// The step runs in the real engine, as chef_delete's does: it renders the
// templates, checks the workflow's expressions against the declared outputs,
// and keeps the outputs for the steps after it.

const terminatedEvent = `{"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
  "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-0abc1234def567890"],
  "detail": {"instance-id": "i-0abc1234def567890", "state": "terminated"}}`

// dnsWorkflow is a cleanup workflow started by the EC2 event: the
// route53_cleanup step with the given parameters, then the channel report.
func dnsWorkflow(with string) switchboard.WorkflowSpec {
	return switchboard.WorkflowSpec{Name: "cleanup", Steps: []switchboard.StepSpec{
		{ID: "dns", Kind: "route53_cleanup", With: json.RawMessage(with)},
		{Kind: "notify", With: json.RawMessage(`{"text": "{{ event.instances[0] }} terminated: removed {{ steps.dns.summary }}; deleted {{ steps.dns.deleted }}; not owned {{ steps.dns.not_owned }}; already gone {{ steps.dns.absent }}."}`)},
	}}
}

type dnsRun struct {
	run     *switchboard.Run
	out     switchboard.Outcome
	err     error
	outputs struct {
		Deleted  []string `json:"deleted"`
		NotOwned []string `json:"not_owned"`
		Absent   []string `json:"absent"`
		Summary  string   `json:"summary"`
	}
	saves int
}

// newDNSRun checks the workflow as config would and returns a run of it for
// the terminated event.
func newDNSRun(t *testing.T, d *DNS, spec switchboard.WorkflowSpec) (*switchboard.Run, *engine.Runner) {
	t.Helper()
	reg := switchboard.NewRegistry(append(steps.Builtin(), DNSCleanupStep(d))...)
	if problems := engine.CheckWorkflow(reg, spec); len(problems) > 0 {
		t.Fatalf("CheckWorkflow: %+v", problems)
	}
	run := &switchboard.Run{ID: "run-1", Workflow: spec.Name, Plan: engine.Plan(spec), Request: switchboard.Request{
		Source: "aws", ChannelID: "C0OPS",
		Event: &switchboard.Event{Source: "aws", Kind: "EC2 Instance State-change Notification", Data: json.RawMessage(terminatedEvent)},
	}}
	return run, &engine.Runner{Steps: reg}
}

// advance advances the run once.
func advance(t *testing.T, runner *engine.Runner, run *switchboard.Run) dnsRun {
	t.Helper()
	s := &countingSaver{}
	r := dnsRun{run: run}
	r.out, r.err = runner.Advance(context.Background(), run, s)
	r.saves = s.n
	if b, ok := run.Vars["dns"]; ok {
		if err := json.Unmarshal(b, &r.outputs); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func runDNSWorkflow(t *testing.T, d *DNS, spec switchboard.WorkflowSpec) dnsRun {
	t.Helper()
	run, runner := newDNSRun(t, d, spec)
	return advance(t, runner, run)
}

type countingSaver struct{ n int }

func (s *countingSaver) SaveRun(context.Context, *switchboard.Run) error { s.n++; return nil }

func (r dnsRun) said() []string {
	var texts []string
	for _, m := range r.out.Messages {
		texts = append(texts, m.Text)
	}
	return texts
}

func (r dnsRun) audited() []string {
	var lines []string
	for _, a := range r.out.Audit {
		if strings.HasPrefix(a.Subject, "route53 ") {
			lines = append(lines, a.Subject+" "+a.Outcome)
		}
	}
	return lines
}

func TestDNSCleanupStep(t *testing.T) {
	t.Parallel()
	zn := testZoneName(t)
	host := strings.TrimSuffix(zn, ".")
	b := motoDNS(t, DNSOptions{NamePattern: "{{name}}." + host}, "")
	zone := createZone(t, b.raw, zn)
	b.dns.opts.Zones = []string{zone}
	// The fleet names records after the instance id here.
	createRecords(t, b.raw, zone,
		rrset("i-0abc1234def567890."+zn, types.RRTypeA, "10.0.0.5"),
		rrset("web."+zn, types.RRTypeA, "10.0.0.5"),
	)
	spec := dnsWorkflow(`{"name": "{{ event.instances[0] }}", "ips": ["10.0.0.5", ""]}`)

	r := runDNSWorkflow(t, b.dns, spec)
	if r.err != nil || r.run.State != switchboard.RunSucceeded {
		t.Fatalf("run %s (%s), %v", r.run.State, r.run.Error, r.err)
	}
	rec, web := "i-0abc1234def567890."+host+" A", "web."+host+" A"
	if !slices.Equal(r.outputs.Deleted, []string{rec}) || !slices.Equal(r.outputs.NotOwned, []string{web}) || len(r.outputs.Absent) != 0 {
		t.Errorf("outputs %+v", r.outputs)
	}
	want := []string{"i-0abc1234def567890 terminated: removed 1 DNS record; left 1 record Switchboard does not own: " + web +
		"; deleted " + rec + "; not owned " + web + "; already gone ."}
	if !slices.Equal(r.said(), want) {
		t.Errorf("said %q, want %q", r.said(), want)
	}
	if got, want := r.audited(), []string{"route53 delete " + rec + " ok", "route53 leave " + web + " not owned"}; !slices.Equal(got, want) {
		t.Errorf("audit %q, want %q", got, want)
	}
	if r.saves != 0 {
		t.Errorf("%d checkpoints; a cleanup that works needs none", r.saves)
	}
	if got := zoneRecords(t, b.raw, zone); !slices.Equal(got, []string{web}) {
		t.Errorf("left in the zone %q", got)
	}

	// The event again: nothing of the instance's is left, which is success.
	r = runDNSWorkflow(t, b.dns, spec)
	if r.err != nil || r.run.State != switchboard.RunSucceeded {
		t.Fatalf("second run %s (%s), %v", r.run.State, r.run.Error, r.err)
	}
	if len(r.outputs.Deleted) != 0 || !strings.HasPrefix(r.outputs.Summary, "no DNS records") {
		t.Errorf("second run's outputs %+v", r.outputs)
	}
	if got := r.audited(); !slices.Equal(got, []string{"route53 leave " + web + " not owned"}) {
		t.Errorf("second run audited %q", got)
	}
}

func TestDNSCleanupStepDryRun(t *testing.T) {
	t.Parallel()
	zn := testZoneName(t)
	host := strings.TrimSuffix(zn, ".")
	b := motoDNS(t, DNSOptions{OwnerTXT: owner, OwnerTXTName: "_owner.{{name}}"}, "")
	zone := createZone(t, b.raw, zn)
	b.dns.opts.Zones = []string{zone}
	createRecords(t, b.raw, zone, rrset("web-7."+zn, types.RRTypeA, "54.1.2.3"), txt("_owner.web-7."+zn, owner))

	// ips as one string, as a template that yields a list renders it.
	r := runDNSWorkflow(t, b.dns, dnsWorkflow(`{"ips": "10.0.0.5, 54.1.2.3", "dry_run": true}`))
	if r.err != nil || r.run.State != switchboard.RunSucceeded {
		t.Fatalf("run %s (%s), %v", r.run.State, r.run.Error, r.err)
	}
	if !slices.Equal(r.outputs.Deleted, []string{"web-7." + host + " A", "_owner.web-7." + host + " TXT"}) || r.outputs.Summary != "would remove 2 DNS records" {
		t.Errorf("outputs %+v", r.outputs)
	}
	if got := r.audited(); len(got) != 0 {
		t.Errorf("a dry run audited %q", got)
	}
	if got := zoneRecords(t, b.raw, zone); len(got) != 2 || b.changes.Load() != 0 {
		t.Errorf("a dry run changed the zone: %q, %d batches", got, b.changes.Load())
	}
}

// TestDNSCleanupStepInterrupted fails the second zone's batch: the step
// keeps what the first zone's deleted, and reports and audits both zones,
// each deletion once, when it is run again. Throttling parks the run (its
// audit lines are committed with it); an outage is a transient error (the
// attempt's audit lines are dropped with it).
func TestDNSCleanupStepInterrupted(t *testing.T) {
	t.Parallel()
	moto := motoEndpoint(t)
	for _, throttled := range []bool{true, false} {
		name := "outage"
		if throttled {
			name = "throttled"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			like := &route53Like{raw: rawRoute53(t, moto)}
			srv := like.serve(t, moto)
			b := motoDNS(t, DNSOptions{OwnerTXT: owner}, srv.URL)
			names := map[string]string{}
			for range 2 {
				zn := testZoneName(t)
				names[createZone(t, b.raw, zn)] = zn
			}
			zones := slices.Sorted(maps.Keys(names)) // the order they are cleaned up in
			b.dns.opts.Zones = zones
			var want, wantAudit []string
			for _, z := range zones {
				zn := names[z]
				createRecords(t, b.raw, z, rrset("web-7."+zn, types.RRTypeA, "10.0.0.5"), txt("web-7."+zn, owner))
				for _, typ := range []string{" A", " TXT"} {
					want = append(want, "web-7."+strings.TrimSuffix(zn, ".")+typ)
					wantAudit = append(wantAudit, "route53 delete web-7."+strings.TrimSuffix(zn, ".")+typ+" ok")
				}
			}
			if throttled {
				like.throttleIn.Store(&zones[1])
			} else {
				like.outageIn.Store(&zones[1])
			}

			run, runner := newDNSRun(t, b.dns, dnsWorkflow(`{"ips": ["10.0.0.5"]}`))
			r := advance(t, runner, run)
			resumedAudit := wantAudit
			if throttled {
				if r.err != nil || r.run.State.Finished() || r.out.Wait <= 0 {
					t.Fatalf("throttled run %s, wait %v, %v; want it parked", r.run.State, r.out.Wait, r.err)
				}
				if got := r.audited(); !slices.Equal(got, wantAudit[:2]) {
					t.Errorf("parked attempt audited %q, want %q", got, wantAudit[:2])
				}
				resumedAudit = wantAudit[2:]
			} else {
				// An outage parks the run with a word in the channel; the
				// engine tries again.
				if r.err != nil || r.run.State != switchboard.RunWaiting || r.out.Wait <= 0 {
					t.Fatalf("run %s, wait %v, %v; want it parked to try again", r.run.State, r.out.Wait, r.err)
				}
				if r.saves != 1 {
					t.Errorf("%d checkpoints, want 1: what the first zone deleted", r.saves)
				}
			}

			r = advance(t, runner, run)
			if r.err != nil || r.run.State != switchboard.RunSucceeded {
				t.Fatalf("resumed run %s (%s), %v", r.run.State, r.run.Error, r.err)
			}
			if !slices.Equal(r.outputs.Deleted, want) || r.outputs.Summary != "4 DNS records" {
				t.Errorf("outputs %+v, want deleted %q", r.outputs, want)
			}
			if got := r.audited(); !slices.Equal(got, resumedAudit) {
				t.Errorf("resumed attempt audited %q, want %q", got, resumedAudit)
			}
			for _, z := range zones {
				if got := zoneRecords(t, b.raw, z); len(got) != 0 {
					t.Errorf("left in %s: %q", z, got)
				}
			}
		})
	}
}

func TestDNSCleanupStepFailures(t *testing.T) {
	t.Parallel()
	denied := (&fakeRoute53{fail: func(w http.ResponseWriter, r *http.Request) bool {
		writeRoute53Error(w, http.StatusForbidden, "AccessDenied", "not authorized to perform: route53:ListResourceRecordSets")
		return true
	}}).serve(t)
	r := runDNSWorkflow(t, fakeDNS(t, denied.URL, 100, "Z1"), dnsWorkflow(`{"name": "web-7"}`))
	if r.err != nil || r.run.State != switchboard.RunFailed {
		t.Fatalf("run %s, %v; want failed", r.run.State, r.err)
	}
	if want := "Could not clean up the DNS records of web-7: Route53 at " + denied.URL + " did not let Switchboard list the records of hosted zone Z1"; !strings.HasPrefix(r.run.Error, want) {
		t.Errorf("error %q, want it to start %q", r.run.Error, want)
	}

	down := (&fakeRoute53{}).serve(t)
	down.Close()
	r = runDNSWorkflow(t, fakeDNS(t, down.URL, 100, "Z1"), dnsWorkflow(`{"name": "web-7"}`))
	if r.err != nil || r.run.State != switchboard.RunWaiting || len(r.out.Messages) != 1 || !strings.Contains(r.out.Messages[0].Text, "I'll keep trying until") {
		t.Errorf("run %s, %v, said %+v; want it parked with a word in the channel", r.run.State, r.err, r.out.Messages)
	}

	// Every parameter rendered empty: nothing to look for.
	r = runDNSWorkflow(t, fakeDNS(t, down.URL, 100, "Z1"), dnsWorkflow(`{"name": "", "ips": [""]}`))
	if r.err != nil || r.run.State != switchboard.RunFailed || !strings.Contains(r.run.Error, "all empty") {
		t.Errorf("run %s (%s), %v; want failed for want of a target", r.run.State, r.run.Error, r.err)
	}
}

func TestDNSCleanupStepParams(t *testing.T) {
	t.Parallel()
	byTXT := &DNS{opts: DNSOptions{OwnerTXT: owner}}
	byName := &DNS{opts: DNSOptions{NamePattern: "{{name}}.example.com"}}
	tests := []struct {
		dns    *DNS
		params map[string]any
		bad    bool
	}{
		{nil, map[string]any{"name": "{{ steps.inst.name }}"}, false},
		{byName, map[string]any{"name": "{{ steps.inst.name }}"}, false},
		{byTXT, map[string]any{"ips": []any{"{{ steps.inst.private_ip }}"}, "dry_run": true}, false},
		{byTXT, map[string]any{"hostnames": "{{ steps.inst.private_dns }}"}, false},
		{nil, map[string]any{}, true},
		{byName, map[string]any{"dry_run": true}, true},
		{byTXT, map[string]any{"name": "web-7"}, true},
	}
	for _, tt := range tests {
		problems := DNSCleanupStep(tt.dns).CheckFunc(tt.params)
		switch {
		case !tt.bad && len(problems) > 0:
			t.Errorf("%v: %+v", tt.params, problems)
		case tt.bad && (len(problems) != 1 || problems[0].Param != "ips"):
			t.Errorf("%v: %+v, want one problem with ips", tt.params, problems)
		}
	}

	var l stringList
	for in, want := range map[string][]string{`["a", ""]`: {"a", ""}, `"10.0.0.5, 54.1.2.3"`: {"10.0.0.5", "54.1.2.3"}, `""`: {}, `null`: nil} {
		l = nil
		if err := json.Unmarshal([]byte(in), &l); err != nil || !slices.Equal(l, want) {
			t.Errorf("stringList %s = %q, %v; want %q", in, l, err, want)
		}
	}
}
