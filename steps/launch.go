package steps

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Launch (the "run" step) launches instances. Its ClientToken comes from
// the run and the step, so a retried step finds the instances it launched
// instead of launching more.
var Launch = switchboard.StepType{
	Kind:    "run",
	OnCloud: true,
	Params: []switchboard.Param{
		{Name: "image", Required: true, Hint: "the image to launch, like image: ami-0123456789abcdef0"},
		{Name: "type"}, {Name: "count", Type: switchboard.TypeInt, Min: 1}, {Name: "subnet"},
		{Name: "security_groups", Type: switchboard.TypeStrings}, {Name: "key"}, {Name: "user_data"}, tagsParam,
		cloudParam, {Name: "wait", Type: switchboard.TypeDuration},
	},
	Outputs: []switchboard.Output{{Name: "ids", Type: switchboard.TypeStrings}, {Name: "public_ip", Type: switchboard.TypeText}},
	RunFunc: func(ctx context.Context, s switchboard.StepRun) error {
		var p struct {
			Image          string               `json:"image"`
			Type           string               `json:"type"`
			Count          int                  `json:"count"`
			Subnet         string               `json:"subnet"`
			SecurityGroups []string             `json:"security_groups"`
			Key            string               `json:"key"`
			UserData       string               `json:"user_data"`
			Tags           map[string]string    `json:"tags"`
			Cloud          string               `json:"cloud"`
			Wait           switchboard.Duration `json:"wait"`
		}
		cloud, _, ok := paramsWithCloud(s, &p, &p.Cloud)
		if !ok {
			return nil
		}
		var pr progress
		if err := s.Progress(&pr); err != nil {
			return err
		}
		if pr.Phase == "" {
			run := s.Run()
			insts, err := cloud.RunInstances(ctx, switchboard.LaunchSpec{ImageID: p.Image, Type: p.Type, Count: p.Count, SubnetID: p.Subnet,
				SecurityGroups: p.SecurityGroups, KeyName: p.Key, UserData: p.UserData, Tags: p.Tags,
				ClientToken: fmt.Sprintf("%s-%d", run.ID, run.Cursor)})
			if err != nil {
				return s.CloudError(err, "launch "+p.Image)
			}
			ids := idsOf(insts)
			s.Audit(switchboard.AuditAction, "run "+strings.Join(ids, ","), "ok", p.Image)
			out := map[string]any{"ids": ids, "public_ip": ""}
			if len(insts) > 0 {
				out["public_ip"] = insts[0].PublicIP
			}
			if p.Wait <= 0 {
				return s.Done(out)
			}
			pr.Phase, pr.IDs, pr.Deadline, pr.Outputs = "waiting", ids, s.Now().Add(time.Duration(p.Wait)), out
			if err := s.Checkpoint(ctx, pr); err != nil {
				return err
			}
		}
		return until(ctx, s, cloud, pr.IDs, switchboard.StateRunning, pr.Deadline, time.Duration(p.Wait), pr.Outputs)
	},
}
