package steps

import (
	"context"

	"github.com/switchboardhq/switchboard"
)

// Recall tells what is known of an instance: what the cloud says now, and
// what Switchboard saw of it before (its name, addresses and tags), which
// a terminated instance no longer shows. Cleanup after a termination uses
// it to find the DNS records, the Chef node and the Consul node to remove.
// An instance neither knows is not a failure: known is false. label is how
// a report names it: "web-7 (i-0abc…)", or the id alone without a name.
var Recall = switchboard.StepType{
	Kind:    "recall",
	OnCloud: true,
	Params: []switchboard.Param{
		{Name: "instance", Required: true, Instance: true, Hint: "the instance, like instance: '{{ event.instances[0] }}'"},
		cloudParam,
	},
	Outputs: []switchboard.Output{
		{Name: "id", Type: switchboard.TypeText}, {Name: "known", Type: switchboard.TypeBool}, {Name: "name", Type: switchboard.TypeText},
		{Name: "state", Type: switchboard.TypeText}, {Name: "public_ip", Type: switchboard.TypeText}, {Name: "private_ip", Type: switchboard.TypeText},
		{Name: "private_dns", Type: switchboard.TypeText}, {Name: "ips", Type: switchboard.TypeStrings}, {Name: "type", Type: switchboard.TypeText},
		{Name: "tags", Type: switchboard.TypeTags}, {Name: "label", Type: switchboard.TypeText},
	},
	RunFunc: func(ctx context.Context, s switchboard.StepRun) error {
		var p struct {
			Instance string `json:"instance"`
			Cloud    string `json:"cloud"`
		}
		cloud, name, ok := paramsWithCloud(s, &p, &p.Cloud)
		if !ok {
			return nil
		}
		insts, err := cloud.DescribeInstances(ctx, switchboard.Filter{IDs: []string{p.Instance}})
		if err != nil && switchboard.ErrorCode(err) != switchboard.ENOTFOUND {
			return s.CloudError(err, "describe "+p.Instance)
		}
		remembered, known, err := s.Recall(ctx, name, p.Instance)
		if err != nil {
			return err
		}
		in := switchboard.Instance{ID: p.Instance, State: "gone"}
		if known {
			in = remembered
		}
		if len(insts) == 1 {
			// What the cloud says now wins, but a terminated instance's
			// empty addresses do not erase the ones it had.
			now := insts[0]
			in.State = now.State
			for _, f := range []struct {
				to   *string
				from string
			}{
				{&in.Name, now.Name}, {&in.PublicIP, now.PublicIP}, {&in.PrivateIP, now.PrivateIP}, {&in.PrivateDNS, now.PrivateDNS}, {&in.Type, now.Type},
			} {
				if f.from != "" {
					*f.to = f.from
				}
			}
			if len(now.Tags) > 0 {
				in.Tags = now.Tags
			}
			known = true
		}
		// A cleanup that looked at an instance's end settles it: the sweep
		// does not hand it to cleanup again.
		if in.State == switchboard.StateTerminated || in.State == switchboard.StateShuttingDown || in.State == "gone" {
			if err := s.Settle(ctx, name, p.Instance); err != nil {
				return err
			}
		}
		var ips []string
		for _, ip := range []string{in.PrivateIP, in.PublicIP} {
			if ip != "" {
				ips = append(ips, ip)
			}
		}
		tags := in.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		return s.Done(map[string]any{"id": p.Instance, "known": known, "name": in.Name, "state": string(in.State), "public_ip": in.PublicIP,
			"private_ip": in.PrivateIP, "private_dns": in.PrivateDNS, "ips": ips, "type": in.Type, "tags": tags, "label": in.Label()})
	},
}
