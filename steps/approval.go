package steps

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Approval asks people for a decision and parks the run until it comes or
// the request times out.
var Approval = switchboard.StepType{
	Kind: "approval",
	Params: []switchboard.Param{
		{Name: "text", Required: true, Hint: "the question the approvers see, like text: Restart {{ steps.inst.name }} now?"},
		{Name: "approvers", Type: switchboard.TypeUsers, Required: true, Hint: "who may decide, like approvers: [group:ops]"},
		{Name: "quorum", Type: switchboard.TypeInt, Min: 1},
		{Name: "allow_requester", Type: switchboard.TypeBool},
		{Name: "timeout", Type: switchboard.TypeDuration},
		{Name: "on_timeout", Values: []string{"deny", "approve"}},
	},
	Outputs: []switchboard.Output{{Name: "approved", Type: switchboard.TypeBool}, {Name: "decision", Type: switchboard.TypeText}, {Name: "by", Type: switchboard.TypeStrings}},
	CheckFunc: func(params map[string]any) []switchboard.ParamProblem {
		users, _ := params["approvers"].([]string)
		if n, ok := params["quorum"].(int); ok && len(users) > 0 && n > len(users) {
			return problem("quorum", fmt.Sprintf("is %d but only %d approvers are listed", n, len(users)))
		}
		return nil
	},
	RunFunc: func(ctx context.Context, s switchboard.StepRun) error {
		var p struct {
			Text           string               `json:"text"`
			Approvers      []string             `json:"approvers"`
			Quorum         int                  `json:"quorum"`
			AllowRequester bool                 `json:"allow_requester"`
			Timeout        switchboard.Duration `json:"timeout"`
			OnTimeout      string               `json:"on_timeout"`
		}
		if !s.Params(&p) {
			return nil
		}
		if !s.ApprovalsAvailable() {
			return s.Fail("Approvals are not available in this setup.", false)
		}
		var pr progress
		if err := s.Progress(&pr); err != nil {
			return err
		}
		run := s.Run()
		id := fmt.Sprintf("%s-%d", run.ID, run.Cursor)
		if pr.Phase == "" {
			rule := switchboard.ApprovalRule{Approvers: p.Approvers, Quorum: p.Quorum, AllowRequester: p.AllowRequester,
				Timeout: time.Duration(p.Timeout), OnTimeout: p.OnTimeout}
			if err := s.OpenApproval(ctx, id, p.Text, rule); err != nil {
				return err
			}
			pr.Phase = "waiting"
			return s.Stage(pr)
		}
		ap, approved, err := s.AwaitApproval(ctx, id)
		if err != nil || ap == nil {
			return err
		}
		var by []string
		for _, d := range ap.Decisions {
			by = append(by, d.User)
		}
		return s.Done(map[string]any{"approved": approved, "decision": ap.DecisionText(), "by": by})
	},
}
