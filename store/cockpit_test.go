package store_test

import (
	"context"
	"testing"

	"github.com/switchboardhq/switchboard"
)

// What the console's run detail reads, on both stores: the run with its
// step records and outcome, the messages it said (without their
// response_url, a credential), its approvals and its audit lines.
func TestRunDetailQueries(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		b := setup(t, url)
		ctx := context.Background()
		req := consoleRequest("start tools")
		req.Source, req.ResponseURL, req.DeliveryID = "slack", "http://127.0.0.1:1/resp", "detail-1"
		ack, err := b.commands.HandleCommand(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		finished := func(id string) *switchboard.Run {
			t.Helper()
			waitFor(t, "run "+id+" to finish", func() bool {
				run, err := b.store.GetRun(ctx, id)
				return err == nil && run.State.Finished()
			})
			run, _ := b.store.GetRun(ctx, id)
			return run
		}
		run := finished(ack.RunID)
		if len(run.Steps) != 1 || run.Steps[0].State != switchboard.StepSucceeded || run.Steps[0].FinishedAt.IsZero() || run.Outcome != "" {
			t.Errorf("run steps %+v, outcome %q; want one succeeded step and no outcome", run.Steps, run.Outcome)
		}
		waitFor(t, "the answer to be delivered", func() bool {
			msgs, err := b.store.RunMessages(ctx, ack.RunID)
			return err == nil && len(msgs) == 1 && !msgs[0].SentAt.IsZero()
		})
		msgs, _ := b.store.RunMessages(ctx, ack.RunID)
		if m := msgs[0]; m.Via != "recorder" || m.ResponseURL != "" || m.Text != "tools (i-0123456789abcdef0) is now running at 107.20.248.29." {
			t.Errorf("message = %+v", m)
		}
		audit, err := b.store.RunAudit(ctx, ack.RunID)
		if err != nil || len(audit) < 2 || audit[0].Kind != switchboard.AuditRequest || audit[len(audit)-1].Kind != switchboard.AuditRun {
			t.Errorf("run audit = %+v (%v), want the request first and the run's end last", audit, err)
		}

		// Again: already running, nothing to do.
		req.DeliveryID = "detail-2"
		again, err := b.commands.HandleCommand(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if run := finished(again.RunID); run.Outcome != switchboard.OutcomeNoop {
			t.Errorf("a start of a running instance has outcome %q, want %q", run.Outcome, switchboard.OutcomeNoop)
		}

		for _, ap := range []switchboard.Approval{
			{ID: ack.RunID + "-a", RunID: ack.RunID, State: switchboard.ApprovalPending, Text: "first?"},
			{ID: ack.RunID + "-b", RunID: ack.RunID, State: switchboard.ApprovalApproved, Text: "second?"},
			{ID: "other-a", RunID: "other", State: switchboard.ApprovalPending},
		} {
			ap.CreatedAt = run.CreatedAt
			if err := b.store.OpenApproval(ctx, ap); err != nil {
				t.Fatal(err)
			}
		}
		aps, err := b.store.RunApprovals(ctx, ack.RunID)
		if err != nil || len(aps) != 2 {
			t.Errorf("run approvals = %+v (%v), want its two", aps, err)
		}
		some, err := b.store.ApprovalsByID(ctx, []string{ack.RunID + "-b", "other-a", "missing"})
		if err != nil || len(some) != 2 {
			t.Errorf("approvals by id = %+v (%v), want the two that exist", some, err)
		}
		if none, err := b.store.ApprovalsByID(ctx, nil); err != nil || len(none) != 0 {
			t.Errorf("approvals by no id = %+v (%v)", none, err)
		}
	})
}
