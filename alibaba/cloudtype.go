package alibaba

import (
	"context"
	"regexp"

	"github.com/switchboardhq/switchboard"
)

// Type declares Alibaba Cloud ECS for the registry: `provider: alibaba` with
// a region and the credentials to use.
var Type = switchboard.CloudType{
	Name:  "alibaba",
	Title: "Alibaba Cloud",
	Params: append([]switchboard.Param{
		{Name: "region"},
		{Name: "endpoint", URL: true, Example: "http://127.0.0.1:5000"},
		switchboard.AssumeRoleParam,
		{Name: "ram_role"},
		{Name: "force_delete", Type: switchboard.TypeBool},
	}, switchboard.AccessKeyParams...),
	CheckFunc: switchboard.CheckCredentials,
	IDFunc: func(s string) (bool, string) {
		return ecsID.MatchString(s), "an instance id (i- and at least 8 lower-case letters or digits, like i-bp1a2b3c4d5e6f7g8h9i)"
	},
	NewFunc: func(_ context.Context, c switchboard.CloudSpec) (switchboard.Provider, error) {
		var o struct {
			Region     string `json:"region"`
			Endpoint   string `json:"endpoint"`
			AssumeRole struct {
				RoleARN    string `json:"role_arn"`
				ExternalID string `json:"external_id"`
			} `json:"assume_role"`
			RAMRole         string `json:"ram_role"`
			ForceDelete     bool   `json:"force_delete"`
			AccessKeyID     string `json:"access_key_id"`
			AccessKeySecret string `json:"access_key_secret"`
		}
		if err := switchboard.DecodeOptions(c.Options, &o); err != nil {
			return nil, err
		}
		return New(Options{Region: o.Region, Endpoint: o.Endpoint, RAMRole: o.RAMRole, ForceDelete: o.ForceDelete,
			RoleARN: o.AssumeRole.RoleARN, ExternalID: o.AssumeRole.ExternalID,
			AccessKeyID: o.AccessKeyID, AccessKeySecret: o.AccessKeySecret, GetenvFunc: c.Getenv})
	},
}

// ecsID is an ECS instance id as ECS writes it: i- and lower-case letters
// and digits (i-bp1a2b3c4d5e6f7g8h9i).
var ecsID = regexp.MustCompile(`^i-[0-9a-z]{8,}$`)
