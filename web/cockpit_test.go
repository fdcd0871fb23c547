package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/web"
)

// fakeDetails serves one run, its messages, approvals and audit lines.
type fakeDetails struct {
	run       switchboard.Run
	messages  []switchboard.MessageRecord
	approvals []switchboard.Approval
	audit     []switchboard.AuditEvent
}

func (d *fakeDetails) GetRun(_ context.Context, id string) (*switchboard.Run, error) {
	if id != d.run.ID {
		return nil, switchboard.Errorf(switchboard.ENOTFOUND, "No run %s.", id)
	}
	run := d.run
	return &run, nil
}

func (d *fakeDetails) RunMessages(context.Context, string) ([]switchboard.MessageRecord, error) {
	return d.messages, nil
}

func (d *fakeDetails) RunApprovals(_ context.Context, runID string) ([]switchboard.Approval, error) {
	var out []switchboard.Approval
	for _, ap := range d.approvals {
		if ap.RunID == runID {
			out = append(out, ap)
		}
	}
	return out, nil
}

func (d *fakeDetails) RunAudit(context.Context, string) ([]switchboard.AuditEvent, error) {
	return d.audit, nil
}

func (d *fakeDetails) ListApprovals(_ context.Context, state string, limit int) ([]switchboard.Approval, error) {
	var out []switchboard.Approval
	for _, ap := range d.approvals {
		if (state == "" || ap.State == state) && len(out) < limit {
			out = append(out, ap)
		}
	}
	return out, nil
}

func (d *fakeDetails) ApprovalsByID(_ context.Context, ids []string) ([]switchboard.Approval, error) {
	var out []switchboard.Approval
	for _, ap := range d.approvals {
		if slices.Contains(ids, ap.ID) {
			out = append(out, ap)
		}
	}
	return out, nil
}

type fakeNames map[string]string

func (n fakeNames) Names(_ context.Context, ids []string) map[string]string {
	out := map[string]string{}
	for _, id := range ids {
		if name, ok := n[id]; ok {
			out[id] = name
		}
	}
	return out
}

type fakeFleet []switchboard.FleetCloud

func (f fakeFleet) Describe(context.Context) []switchboard.FleetCloud { return f }

func cockpitDetails() *fakeDetails {
	decided := now.Add(time.Minute)
	return &fakeDetails{
		run: switchboard.Run{ID: "r-1", Workflow: "restart", State: switchboard.RunSucceeded, Result: "tools was restarted.",
			Steps: []switchboard.StepRecord{{Index: 0, Kind: "approval", ID: "ok", State: switchboard.StepSucceeded, StartedAt: now, FinishedAt: decided}}},
		messages: []switchboard.MessageRecord{{Message: switchboard.Message{RunID: "r-1", Key: "step0.approval.r-1-0", Text: "Approve?", ApprovalID: "r-1-0"}, Via: "console", SentAt: now}},
		approvals: []switchboard.Approval{
			{ID: "r-1-0", RunID: "r-1", Text: "Approve?", Approvers: []string{"U0OPS1", "U0OPS2"}, State: switchboard.ApprovalApproved,
				Decisions: []switchboard.Decision{{User: "U0OPS2", Approve: true, At: decided, Source: "slack"}}, DecidedAt: decided},
			{ID: "r-2-0", RunID: "r-2", Text: "Stop db-1?", Approvers: []string{"U0OPS1"}, State: switchboard.ApprovalPending},
		},
		audit: []switchboard.AuditEvent{{RunID: "r-1", Kind: switchboard.AuditDecision, Actor: "U0OPS2", Subject: "approve approval r-1-0", Outcome: "approved"}},
	}
}

// A run opens to its steps, messages, approvals and audit lines; an
// unknown run is a 404 with a sentence; the API wants the page's token.
func TestRunDetailAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, web.Config{Details: cockpitDetails()})
	token := b.csrf(t)

	resp, body := b.api(t, "GET", "/console/api/runs/r-1", token, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET run = %d: %s", resp.StatusCode, body)
	}
	var d struct {
		Run       switchboard.Run             `json:"run"`
		Messages  []switchboard.MessageRecord `json:"messages"`
		Approvals []switchboard.Approval      `json:"approvals"`
		Audit     []switchboard.AuditEvent    `json:"audit"`
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	if d.Run.ID != "r-1" || len(d.Run.Steps) != 1 || len(d.Messages) != 1 || len(d.Approvals) != 1 || d.Approvals[0].Decisions[0].User != "U0OPS2" || len(d.Audit) != 1 {
		t.Errorf("run detail = %+v", d)
	}
	resp, body = b.api(t, "GET", "/console/api/runs/r-404", token, nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "There is no run r-404.") {
		t.Errorf("GET unknown run = %d %s", resp.StatusCode, body)
	}
	if resp, _ := b.api(t, "GET", "/console/api/runs/r-1", "", nil); resp.StatusCode == http.StatusOK {
		t.Errorf("GET run without the CSRF token = %d, want refused", resp.StatusCode)
	}
}

// The transcript carries each approval request's approval as the store has
// it, so a reload shows a decided request decided.
func TestTranscriptCarriesApprovals(t *testing.T) {
	t.Parallel()
	b := setup(t, web.Config{Details: cockpitDetails()})
	b.store.lines = []switchboard.TranscriptLine{
		{ID: 1, ChannelID: "C0OPS", Kind: "answer", Text: "Approve?", ApprovalID: "r-1-0", RunID: "r-1"},
		{ID: 2, ChannelID: "C0OPS", Kind: "answer", Text: "tools was restarted.", RunID: "r-1"},
	}
	resp, body := b.api(t, "GET", "/console/api/transcript?channel=C0OPS", b.csrf(t), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET transcript = %d: %s", resp.StatusCode, body)
	}
	var got struct {
		Lines []struct {
			ID       int64                 `json:"id"`
			Approval *switchboard.Approval `json:"approval"`
		} `json:"lines"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Lines) != 2 || got.Lines[0].Approval == nil || got.Lines[0].Approval.State != switchboard.ApprovalApproved ||
		got.Lines[0].Approval.DecidedAt.IsZero() || got.Lines[1].Approval != nil {
		t.Errorf("transcript = %s", body)
	}
}

// The inbox splits pending from decided; ?ids= reads given approvals.
func TestApprovalsInboxAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, web.Config{Details: cockpitDetails()})
	token := b.csrf(t)
	_, body := b.api(t, "GET", "/console/api/approvals", token, nil)
	var inbox struct{ Pending, Decided []switchboard.Approval }
	if err := json.Unmarshal([]byte(body), &inbox); err != nil {
		t.Fatal(err)
	}
	if len(inbox.Pending) != 1 || inbox.Pending[0].ID != "r-2-0" || len(inbox.Decided) != 1 || inbox.Decided[0].ID != "r-1-0" {
		t.Errorf("inbox = %s", body)
	}
	_, body = b.api(t, "GET", "/console/api/approvals?ids=r-2-0,nope", token, nil)
	var some struct{ Approvals []switchboard.Approval }
	if err := json.Unmarshal([]byte(body), &some); err != nil || len(some.Approvals) != 1 || some.Approvals[0].ID != "r-2-0" {
		t.Errorf("approvals by id = %s (%v)", body, err)
	}
}

// Names come from the Namer; the pickers show them next to the ids; the
// fleet comes from the Fleet.
func TestNamesAndFleetAPI(t *testing.T) {
	t.Parallel()
	fleet := fakeFleet{{Name: "main", Instances: []switchboard.FleetInstance{{Instance: switchboard.Instance{ID: "i-1", Name: "tools", State: switchboard.StateRunning}, Commands: []string{"/ec2"}}}}}
	b := setup(t, web.Config{Names: fakeNames{"U0OPS1": "ana", "C0OPS": "ops"}, Fleet: fleet})
	token := b.csrf(t)
	_, body := b.api(t, "GET", "/console/api/names?ids=U0OPS1,C0OPS,U0NOBODY", token, nil)
	if body != `{"names":{"C0OPS":"ops","U0OPS1":"ana"}}`+"\n" {
		t.Errorf("names = %s", body)
	}
	resp, body := b.api(t, "GET", "/console/api/names?ids="+strings.Repeat("U1,", 101), token, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Ask for at most 100 names at once") {
		t.Errorf("too many names = %d %s", resp.StatusCode, body)
	}
	_, page := b.do(t, "GET", "/", nil, nil)
	for _, want := range []string{`<option value="U0OPS1">ana (U0OPS1)</option>`, `<option value="C0OPS">#ops (C0OPS)</option>`, `<option value="U0DEV1">U0DEV1</option>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not have %s", want)
		}
	}
	_, body = b.api(t, "GET", "/console/api/fleet", token, nil)
	if !strings.Contains(body, `"commands":["/ec2"]`) || !strings.Contains(body, `"name":"tools"`) {
		t.Errorf("fleet = %s", body)
	}
}
