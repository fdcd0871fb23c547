package config_test

import (
	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/alibaba"
	"github.com/switchboardhq/switchboard/aws"
	"github.com/switchboardhq/switchboard/sim"
	"github.com/switchboardhq/switchboard/steps"
)

// registry holds the built-in step types and clouds, as cmd/switchboard
// registers them.
var registry = func() *switchboard.Registry {
	r := switchboard.NewRegistry(append(steps.Builtin(), steps.Deploys(&switchboard.BranchSources{})...)...)
	r.AddCloud(sim.Type, aws.Type, alibaba.Type)
	return r
}()
