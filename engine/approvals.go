package engine

import (
	"context"
	"fmt"
	"slices"
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
	// Decided, when set, is told of every approval a decision settled
	// (approved or denied), after it was written: the chat platform
	// updates the request it posted, so everyone sees who decided.
	Decided func(ctx context.Context, ap *switchboard.Approval)
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
			refusal = fmt.Sprintf("This request was already %s.", ap.Decided())
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
	if ap.State != switchboard.ApprovalPending && a.Decided != nil {
		a.Decided(ctx, ap)
	}
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
	return ap, "Thanks: " + ap.Decided() + ".", nil
}

var errRefused = fmt.Errorf("refused")
