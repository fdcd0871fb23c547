package aws

import (
	"slices"

	"github.com/switchboardhq/switchboard"
)

// DeployPolicy is what one deploy command may do in the account: launch its
// image, tag what it launched, and change or terminate only instances that
// carry its ownership tag.
type DeployPolicy struct {
	Command string // the ownership tag's value: /deploy
	Image   string // the image it launches
}

// deployStatements grants branch deploys exactly what they do. A launch is
// allowed only when it tags the instance with a deploy's ownership tag, and
// only from the configured images; tags and terminations only on instances
// that carry an ownership tag, so no instance of the account that a deploy
// did not launch can be terminated by one.
func deployStatements(deploys []DeployPolicy, partition string, region func(map[string][]string) map[string]map[string][]string) []statement {
	if len(deploys) == 0 {
		return nil
	}
	var owners, images []string
	for _, d := range deploys {
		owners = append(owners, d.Command)
		if d.Image != "" {
			images = append(images, "arn:"+partition+":ec2:*::image/"+d.Image)
		}
	}
	owners, images = slices.Compact(slices.Sorted(slices.Values(owners))), slices.Compact(slices.Sorted(slices.Values(images)))
	arn := func(kind string) string { return "arn:" + partition + ":ec2:*:*:" + kind + "/*" }
	return []statement{
		{
			// The instance must be tagged as a deploy's at launch.
			Sid: "DeployLaunchTagged", Effect: "Allow", Action: []string{"ec2:RunInstances"},
			Resource:  arn("instance"),
			Condition: region(map[string][]string{"aws:RequestTag/" + switchboard.TagDeploy: owners}),
		},
		{
			// The other resources a launch names carry no request tags.
			Sid: "DeployLaunchFrom", Effect: "Allow", Action: []string{"ec2:RunInstances"},
			Resource:  append(images, arn("subnet"), arn("security-group"), arn("network-interface"), arn("key-pair")),
			Condition: region(nil),
		},
		{
			Sid: "DeployTagAtLaunch", Effect: "Allow", Action: []string{"ec2:CreateTags"},
			Resource:  arn("instance"),
			Condition: region(map[string][]string{"ec2:CreateAction": {"RunInstances"}}),
		},
		{
			// Pins, expiry and teardown: only on a deploy's own instances.
			Sid: "DeployOwnInstances", Effect: "Allow", Action: []string{"ec2:CreateTags", "ec2:DeleteTags", "ec2:TerminateInstances"},
			Resource:  arn("instance"),
			Condition: region(map[string][]string{"ec2:ResourceTag/" + switchboard.TagDeploy: owners}),
		},
	}
}
