package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/switchboardhq/switchboard"
)

// SweepDeparted is the sweep for terminations nobody was told of (an event
// lost while Switchboard was down, a queue misconfigured for a while): it
// looks at every instance the inventory knows whose end no cleanup has
// looked at, and hands each one that is gone or terminated to the named
// workflow, as if its "terminated" notification had come in. Run it on a
// schedule on the leader:
//
//	sweep:
//	  trigger: { schedule: { cron: "0 * * * *" } }
//	  channel: C0OPS
//	  steps:
//	    - sweep_departed: { workflow: decommission }
var SweepDeparted = switchboard.StepType{
	Kind:    "sweep_departed",
	OnCloud: true,
	Params: []switchboard.Param{
		{Name: "workflow", Required: true, Hint: "the cleanup workflow to hand each departed instance to, like workflow: decommission"},
		{Name: "limit", Type: switchboard.TypeInt, Min: 1},
		cloudParam,
	},
	Outputs: []switchboard.Output{{Name: "instances", Type: switchboard.TypeStrings}},
	RunFunc: func(ctx context.Context, s switchboard.StepRun) error {
		var p struct {
			Workflow string `json:"workflow"`
			Limit    int    `json:"limit"`
			Cloud    string `json:"cloud"`
		}
		cloud, name, ok := paramsWithCloud(s, &p, &p.Cloud)
		if !ok {
			return nil
		}
		known, err := s.Unsettled(ctx, name)
		if err != nil {
			return err
		}
		if len(known) == 0 {
			return s.Done(map[string]any{"instances": []string{}})
		}
		byID := map[string]switchboard.Instance{}
		for _, in := range known {
			byID[in.ID] = in
		}
		now, err := cloud.DescribeInstances(ctx, switchboard.Filter{IDs: idsOf(known)})
		gone := map[string]bool{}
		var partial *switchboard.PartialError
		switch {
		case err == nil:
		case errors.As(err, &partial):
			for id, ferr := range partial.Failed {
				if switchboard.ErrorCode(ferr) != switchboard.ENOTFOUND {
					return s.CloudError(ferr, "describe "+id)
				}
				gone[id] = true
			}
		case switchboard.ErrorCode(err) == switchboard.ENOTFOUND:
			// A cloud without the fleet layer fails the whole describe
			// for one unknown id: ask one at a time.
			now = nil
			for _, in := range known {
				one, err := cloud.DescribeInstances(ctx, switchboard.Filter{IDs: []string{in.ID}})
				switch {
				case switchboard.ErrorCode(err) == switchboard.ENOTFOUND:
					gone[in.ID] = true
				case err != nil:
					return s.CloudError(err, "describe "+in.ID)
				}
				now = append(now, one...)
			}
		default:
			return s.CloudError(err, "describe the instances Switchboard knows")
		}
		for _, in := range now {
			if in.State == switchboard.StateTerminated || in.State == switchboard.StateShuttingDown {
				gone[in.ID] = true
			}
		}
		var departed, labelsOf []string
		for _, in := range known {
			if !gone[in.ID] {
				continue
			}
			if p.Limit > 0 && len(departed) == p.Limit {
				break
			}
			data, _ := json.Marshal(map[string]any{"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification",
				"detail": map[string]string{"instance-id": in.ID, "state": "terminated"}})
			ids, err := s.Emit(ctx, switchboard.Event{Source: "aws", Kind: "EC2 Instance State-change Notification", Workflow: p.Workflow,
				DeliveryID: "sweep/" + name + "/" + in.ID, Subject: in.ID + " ended unnoticed", Data: data, Trigger: "sweep"})
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				return s.Fail(fmt.Sprintf("There is no workflow %q to hand departed instances to.", p.Workflow), false)
			}
			if err := s.Settle(ctx, name, in.ID); err != nil {
				return err
			}
			s.Audit(switchboard.AuditAction, "sweep "+in.ID, "ok", "handed to "+p.Workflow)
			departed = append(departed, in.ID)
			labelsOf = append(labelsOf, byID[in.ID].Label())
		}
		if len(departed) > 0 {
			s.Say("swept", fmt.Sprintf("Found %d instance(s) that ended unnoticed: %s; %s is cleaning up after each.", len(departed), strings.Join(labelsOf, ", "), p.Workflow))
		}
		return s.Done(map[string]any{"instances": departed})
	},
}
