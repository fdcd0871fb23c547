package aws

import (
	"context"
	"regexp"

	"github.com/switchboardhq/switchboard"
)

// Type declares AWS EC2 for the registry: `provider: aws` with a region and
// the credentials to use.
var Type = switchboard.CloudType{
	Name:  "aws",
	Title: "AWS",
	Params: append([]switchboard.Param{
		{Name: "region"},
		{Name: "endpoint", URL: true, Example: "http://127.0.0.1:5000"},
		{Name: "profile"},
		switchboard.AssumeRoleParam,
	}, switchboard.AccessKeyParams...),
	CheckFunc: switchboard.CheckCredentials,
	IDFunc: func(s string) (bool, string) {
		return ec2ID.MatchString(s), "an EC2 instance id (i- and 8 or 17 hex digits, like i-0123456789abcdef0)"
	},
	NewFunc: func(ctx context.Context, c switchboard.CloudSpec) (switchboard.Provider, error) {
		var o struct {
			Region     string `json:"region"`
			Endpoint   string `json:"endpoint"`
			Profile    string `json:"profile"`
			AssumeRole struct {
				RoleARN    string `json:"role_arn"`
				ExternalID string `json:"external_id"`
			} `json:"assume_role"`
			AccessKeyID     string `json:"access_key_id"`
			AccessKeySecret string `json:"access_key_secret"`
		}
		if err := switchboard.DecodeOptions(c.Options, &o); err != nil {
			return nil, err
		}
		return New(ctx, Options{Region: o.Region, Endpoint: o.Endpoint, Profile: o.Profile,
			RoleARN: o.AssumeRole.RoleARN, ExternalID: o.AssumeRole.ExternalID,
			AccessKeyID: o.AccessKeyID, AccessKeySecret: o.AccessKeySecret})
	},
}

// ec2ID is an EC2 instance id: i- and 8 (older) or 17 hex digits.
var ec2ID = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
