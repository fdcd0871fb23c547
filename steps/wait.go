package steps

import (
	"context"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Wait parks the run until an instance reaches a state, or fails the step
// at the timeout (default 5 minutes).
var Wait = switchboard.StepType{
	Kind:    "wait",
	OnCloud: true,
	Params: []switchboard.Param{
		{Name: "instance", Required: true, Instance: true, Hint: "the instance, like instance: '{{ steps.mail.instance }}'"},
		{Name: "state", Required: true, Values: instanceStates, Hint: "the state to wait for: one of " + strings.Join(instanceStates, ", ")},
		{Name: "timeout", Type: switchboard.TypeDuration},
		cloudParam,
	},
	Outputs: []switchboard.Output{{Name: "state", Type: switchboard.TypeText}},
	RunFunc: func(ctx context.Context, s switchboard.StepRun) error {
		var p struct {
			targetParams
			State   string               `json:"state"`
			Timeout switchboard.Duration `json:"timeout"`
		}
		cloud, _, ok := paramsWithCloud(s, &p, &p.Cloud)
		if !ok {
			return nil
		}
		limit := time.Duration(p.Timeout)
		if limit <= 0 {
			limit = 5 * time.Minute
		}
		var pr progress
		if err := s.Progress(&pr); err != nil {
			return err
		}
		if pr.Phase == "" {
			pr.Phase, pr.IDs, pr.Deadline = "waiting", []string{p.Instance}, s.Now().Add(limit)
			if err := s.Stage(pr); err != nil {
				return err
			}
		}
		return until(ctx, s, cloud, pr.IDs, switchboard.InstanceState(p.State), pr.Deadline, limit, nil)
	},
}
