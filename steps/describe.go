package steps

import (
	"context"
	"fmt"

	"github.com/switchboardhq/switchboard"
)

// Describe looks up one instance, by id or by tags, and leaves its
// attributes for later steps.
var Describe = switchboard.StepType{
	Kind:    "describe",
	OnCloud: true,
	Targets: []string{"instance", "tags"},
	Params:  []switchboard.Param{instanceParam, tagsParam, cloudParam},
	Outputs: []switchboard.Output{
		{Name: "id", Type: switchboard.TypeText}, {Name: "name", Type: switchboard.TypeText}, {Name: "state", Type: switchboard.TypeText},
		{Name: "public_ip", Type: switchboard.TypeText}, {Name: "private_ip", Type: switchboard.TypeText}, {Name: "type", Type: switchboard.TypeText},
		{Name: "tags", Type: switchboard.TypeTags},
	},
	RunFunc: func(ctx context.Context, s switchboard.StepRun) error {
		var p targetParams
		cloud, name, ok := paramsWithCloud(s, &p, &p.Cloud)
		if !ok {
			return nil
		}
		f := switchboard.Filter{Tags: p.Tags}
		if p.Instance != "" {
			f = switchboard.Filter{IDs: []string{p.Instance}}
		}
		insts, err := cloud.DescribeInstances(ctx, f)
		if err == nil && len(insts) == 0 {
			return s.Fail(fmt.Sprintf("No instance matches %s in cloud %s.", p.text(), name), false)
		}
		if err != nil {
			return s.CloudError(err, "describe "+p.text())
		}
		inst := insts[0]
		return s.Done(map[string]any{"id": inst.ID, "name": inst.Name, "state": string(inst.State), "public_ip": inst.PublicIP,
			"private_ip": inst.PrivateIP, "type": inst.Type, "tags": inst.Tags})
	},
}
