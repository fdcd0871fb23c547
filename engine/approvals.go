package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// ApprovalStore keeps approvals. UpdateApproval reads an approval and writes
// back what fn made of it in one transaction, so two clicks at once cannot
// both count as the deciding one.
type ApprovalStore interface {
	OpenApproval(ctx context.Context, a switchboard.Approval) error // a second open of the same id changes nothing
	GetApproval(ctx context.Context, id string) (*switchboard.Approval, error)
	UpdateApproval(ctx context.Context, id string, fn func(a *switchboard.Approval) error) (*switchboard.Approval, error)
	ListApprovals(ctx context.Context, state string, limit int) ([]switchboard.Approval, error)
	Audit(ctx context.Context, ev switchboard.AuditEvent) error
}

// Approvals takes decisions on approvals, from Slack buttons or the console.
type Approvals struct {
	Store   ApprovalStore
	NowFunc func() time.Time
}

func (a *Approvals) now() time.Time {
	if a.NowFunc != nil {
		return a.NowFunc()
	}
	return time.Now()
}

// Decide records user's answer to an approval. It refuses, without changing
// anything, an unknown approval, a user who is not an approver, a requester
// approving their own run when that is not allowed, a second answer from the
// same person and any answer after the decision; every refusal is audited.
// It returns the approval as it now stands and a sentence for the person who
// clicked.
func (a *Approvals) Decide(ctx context.Context, id, user string, approve bool, source string) (*switchboard.Approval, string, error) {
	verb := "deny"
	if approve {
		verb = "approve"
	}
	audit := func(ap *switchboard.Approval, outcome, detail string) {
		ev := switchboard.AuditEvent{Time: a.now(), Kind: switchboard.AuditDecision, Actor: user, Subject: verb + " approval " + id,
			Outcome: outcome, Detail: detail + " (via " + source + ")"}
		if ap != nil {
			ev.RunID, ev.Channel = ap.RunID, ap.Channel
		}
		_ = a.Store.Audit(ctx, ev)
	}
	var refusal string
	ap, err := a.Store.UpdateApproval(ctx, id, func(ap *switchboard.Approval) error {
		switch {
		case ap.State != switchboard.ApprovalPending:
			refusal = fmt.Sprintf("This request was already %s.", decidedText(ap))
		case !slices.Contains(ap.Approvers, user):
			refusal = "You are not one of the approvers of this request."
		case user == ap.Requester && !ap.AllowRequester:
			refusal = "You started this run, so someone else has to approve it."
		case slices.ContainsFunc(ap.Decisions, func(d switchboard.Decision) bool { return d.User == user }):
			refusal = "You have already answered this request."
		case !a.now().Before(ap.Deadline):
			refusal = "This request has timed out."
		}
		if refusal != "" {
			return errRefused
		}
		ap.Decisions = append(ap.Decisions, switchboard.Decision{User: user, Approve: approve, At: a.now(), Source: source})
		approvals := 0
		for _, d := range ap.Decisions {
			if d.Approve {
				approvals++
			}
		}
		switch {
		case !approve:
			ap.State, ap.DecidedAt = switchboard.ApprovalDenied, a.now()
		case approvals >= max(ap.Quorum, 1):
			ap.State, ap.DecidedAt = switchboard.ApprovalApproved, a.now()
		}
		return nil
	})
	if err == errRefused {
		audit(ap, "refused", refusal)
		return ap, refusal, nil
	}
	if switchboard.ErrorCode(err) == switchboard.ENOTFOUND {
		audit(nil, "refused", "unknown approval")
		return nil, "This approval request does not exist (any more).", nil
	}
	if err != nil {
		return nil, "", err
	}
	audit(ap, verb+"d", "")
	if ap.State != switchboard.ApprovalPending {
		// The run re-checks its approval every few seconds anyway; waking
		// it only saves that wait, so a failure here is not one.
		if w, ok := a.Store.(interface {
			WakeRun(ctx context.Context, runID string) error
		}); ok {
			_ = w.WakeRun(ctx, ap.RunID)
		}
	}
	if ap.State == switchboard.ApprovalPending {
		return ap, fmt.Sprintf("Thanks: %d of %d approvals so far.", len(ap.Decisions), ap.Quorum), nil
	}
	return ap, "Thanks: " + decidedText(ap) + ".", nil
}

var errRefused = fmt.Errorf("refused")

// decidedText says how an approval was decided: "approved by <@U1>, <@U2>".
func decidedText(ap *switchboard.Approval) string {
	var by []string
	for _, d := range ap.Decisions {
		if d.Approve == (ap.State == switchboard.ApprovalApproved) {
			by = append(by, "<@"+d.User+">")
		}
	}
	switch ap.State {
	case switchboard.ApprovalApproved:
		return "approved by " + strings.Join(by, ", ")
	case switchboard.ApprovalDenied:
		return "denied by " + strings.Join(by, ", ")
	case switchboard.ApprovalTimedOut:
		return "timed out"
	}
	return ap.State
}

// approval asks for a decision and parks the run until it comes or the
// request times out.
func (ws *wfStep) approval(ctx context.Context) error {
	var p struct {
		Text           string   `json:"text"`
		Approvers      []string `json:"approvers"`
		Quorum         int      `json:"quorum"`
		AllowRequester bool     `json:"allow_requester"`
		Timeout        duration `json:"timeout"`
		OnTimeout      string   `json:"on_timeout"`
	}
	if !ws.decode(&p) {
		return nil
	}
	if ws.runner.Approvals == nil {
		return ws.stepFailed("Approvals are not available in this setup.", false)
	}
	id := fmt.Sprintf("%s-%d", ws.run.ID, ws.run.Cursor)
	if ws.p.Phase == "" {
		rule := switchboard.ApprovalRule{Approvers: p.Approvers, Quorum: p.Quorum, AllowRequester: p.AllowRequester,
			Timeout: time.Duration(p.Timeout), OnTimeout: p.OnTimeout}
		if err := ws.openApproval(ctx, id, p.Text, rule); err != nil {
			return err
		}
		ws.p.Phase = "waiting"
		return ws.stage(ws.p)
	}
	ap, approved, err := ws.awaitApproval(ctx, id)
	if err != nil || ap == nil {
		return err
	}
	var by []string
	for _, d := range ap.Decisions {
		by = append(by, d.User)
	}
	return ws.done(map[string]any{"approved": approved, "decision": decisionText(ap), "by": by})
}

// openApproval records an approval request, posts it with its buttons and
// parks the run.
func (sc *stepContext) openApproval(ctx context.Context, id, text string, rule switchboard.ApprovalRule) error {
	timeout := rule.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	if rule.OnTimeout == "" {
		rule.OnTimeout = "deny"
	}
	ap := switchboard.Approval{ID: id, RunID: sc.run.ID, Step: sc.run.Cursor, Channel: sc.run.Request.ChannelID, Text: text,
		Approvers: rule.Approvers, Quorum: max(rule.Quorum, 1), AllowRequester: rule.AllowRequester, Requester: sc.run.Request.UserID,
		Deadline: sc.runner.now().Add(timeout), OnTimeout: rule.OnTimeout, State: switchboard.ApprovalPending, CreatedAt: sc.runner.now()}
	if err := sc.runner.Approvals.OpenApproval(ctx, ap); err != nil {
		return fmt.Errorf("open approval: %w", err)
	}
	sc.say("approval."+id, text)
	sc.out.Messages[len(sc.out.Messages)-1].ApprovalID = id
	sc.wait(sc.runner.pollInterval())
	return nil
}

// awaitApproval checks an approval: while it is pending it parks the run
// and returns a nil approval; once decided (or timed out, which it records
// and tells the channel) it returns the approval and whether it counts as
// approved.
func (sc *stepContext) awaitApproval(ctx context.Context, id string) (*switchboard.Approval, bool, error) {
	store := sc.runner.Approvals
	ap, err := store.GetApproval(ctx, id)
	if err != nil {
		return nil, false, fmt.Errorf("read approval %s: %w", id, err)
	}
	if ap.State == switchboard.ApprovalPending && !sc.runner.now().Before(ap.Deadline) {
		ap, err = store.UpdateApproval(ctx, id, func(a *switchboard.Approval) error {
			if a.State == switchboard.ApprovalPending {
				a.State, a.DecidedAt = switchboard.ApprovalTimedOut, sc.runner.now()
			}
			return nil
		})
		if err != nil {
			return nil, false, fmt.Errorf("time out approval %s: %w", id, err)
		}
	}
	if ap.State == switchboard.ApprovalPending {
		sc.wait(min(sc.runner.pollInterval(), max(ap.Deadline.Sub(sc.runner.now()), time.Millisecond)))
		return nil, false, nil
	}
	approved := ap.State == switchboard.ApprovalApproved || ap.State == switchboard.ApprovalTimedOut && ap.OnTimeout == "approve"
	if ap.State == switchboard.ApprovalTimedOut {
		sc.say("approval."+id+".timeout", "Nobody answered \""+clip(ap.Text, 80)+"\" in time; it counts as "+
			map[bool]string{true: "approved", false: "denied"}[approved]+".")
	}
	return ap, approved, nil
}

// decisionText is the decision as later steps and answers show it.
func decisionText(ap *switchboard.Approval) string {
	if ap.State == switchboard.ApprovalTimedOut {
		return "timed out after " + ap.Deadline.Sub(ap.CreatedAt).Round(time.Second).String()
	}
	return ap.State
}
