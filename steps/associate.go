package steps

import (
	"context"

	"github.com/switchboardhq/switchboard"
)

// Associate attaches an Elastic IP to an instance.
var Associate = switchboard.StepType{
	Kind:    "associate",
	OnCloud: true,
	Params: []switchboard.Param{
		{Name: "instance", Required: true, Instance: true, Hint: "the instance, like instance: '{{ steps.mail.instance }}'"},
		{Name: "address", Required: true, Hint: "the Elastic IP, like address: 107.20.248.29"},
		cloudParam,
	},
	RunFunc: func(ctx context.Context, s switchboard.StepRun) error {
		var p struct {
			Instance string `json:"instance"`
			Address  string `json:"address"`
			Cloud    string `json:"cloud"`
		}
		cloud, _, ok := paramsWithCloud(s, &p, &p.Cloud)
		if !ok {
			return nil
		}
		if err := cloud.AssociateAddress(ctx, p.Instance, p.Address); err != nil {
			return s.CloudError(err, "attach "+p.Address+" to "+p.Instance)
		}
		s.Audit(switchboard.AuditAction, "associate "+p.Address+" "+p.Instance, "ok", "")
		return s.Done(nil)
	},
}
