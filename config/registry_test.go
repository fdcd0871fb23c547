package config_test

import (
	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/alibaba"
	"github.com/switchboardhq/switchboard/aws"
	"github.com/switchboardhq/switchboard/chef"
	"github.com/switchboardhq/switchboard/consul"
	"github.com/switchboardhq/switchboard/sim"
	"github.com/switchboardhq/switchboard/steps"
)

// registry holds the built-in step types and clouds, as cmd/switchboard
// registers them.
var registry = func() *switchboard.Registry {
	types := append(steps.Builtin(), steps.Deploys(&switchboard.BranchSources{})...)
	types = append(types, chef.DeleteStep(nil), consul.DeregisterStep(nil), aws.DNSCleanupStep(nil))
	types[len(types)-3].Requires, types[len(types)-2].Requires, types[len(types)-1].Requires = "chef", "consul", "dns"
	r := switchboard.NewRegistry(types...)
	r.AddCloud(sim.Type, aws.Type, alibaba.Type)
	return r
}()
