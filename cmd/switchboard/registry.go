package main

import (
	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/alibaba"
	"github.com/switchboardhq/switchboard/aws"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/fleet"
	"github.com/switchboardhq/switchboard/sim"
	"github.com/switchboardhq/switchboard/steps"
)

// newRegistry lists every step type workflows may use (the built-in ones,
// then each integration's) and every cloud a config may name. An
// integration's step type or a cloud is registered with one line here;
// config and the engine find it through the registry.
//
// The deploy steps find their branch sources and schedules in the returned
// BranchSources once the config is loaded (wireDeploys).
func newRegistry() (*switchboard.Registry, *wiring) {
	w := &wiring{deploys: &switchboard.BranchSources{}, integrations: &integrations{}}
	types := append(steps.Builtin(), steps.Deploys(w.deploys)...)
	r := switchboard.NewRegistry(append(types, w.integrations.steps()...)...)
	for _, c := range clouds {
		r.AddCloud(c.typ)
	}
	return r, w
}

// wiring is what the registered steps find once the config is loaded:
// the deploys' branch sources and the integrations' clients.
type wiring struct {
	deploys      *switchboard.BranchSources
	integrations *integrations
}

// build fills the wiring from the config; with create, it may write (the
// demo repository).
func (w *wiring) build(cfg *config.Config, create bool) error {
	if err := wireDeploys(cfg, w.deploys, create); err != nil {
		return err
	}
	return w.integrations.build(cfg)
}

// clouds is the table of cloud types: each provider's declaration and the
// fleet layer that goes in front of it.
var clouds = []struct {
	typ   switchboard.CloudType
	fleet func(switchboard.Provider) fleet.Options
}{
	{sim.Type, func(p switchboard.Provider) fleet.Options {
		if s, ok := p.(*sim.Cloud); ok && s.Unthrottled() {
			// No simulated API limits: none in front of them either.
			return fleet.Options{Limits: unlimited}
		}
		return fleet.Options{} // EC2's limits, as the simulator has them
	}},
	{aws.Type, func(switchboard.Provider) fleet.Options { return fleet.Options{} }},
	// ECS's limits are not EC2's (its throttling is still retried); its
	// batch calls take 100 ids.
	{alibaba.Type, func(switchboard.Provider) fleet.Options {
		return fleet.Options{Limits: unlimited, Batch: fleet.BatchSizes{Describe: 100, Mutate: 100, Terminate: 100}}
	}},
}

// fleetOptions is the fleet layer for a provider of the named type.
func fleetOptions(name string, p switchboard.Provider) fleet.Options {
	for _, c := range clouds {
		if c.typ.Name == name {
			return c.fleet(p)
		}
	}
	return fleet.Options{}
}

// cloudTitles names each configured cloud as sentences to people do, by
// its provider's title ("AWS"); the engine says so when it does not answer.
func cloudTitles(cfg *config.Config) map[string]string {
	titles := map[string]string{}
	for _, c := range cfg.Clouds {
		if t, ok := cfg.Registry().Cloud(c.Provider); ok && t.Title != "" {
			titles[c.Name] = t.Title
		}
	}
	return titles
}

// unlimited turns the fleet layer's own token buckets off.
var unlimited = fleet.Limits{Describe: noLimit, Mutate: noLimit, Start: noLimit, Terminate: noLimit}

var noLimit = fleet.Bucket{PerSecond: -1}

// instanceIDFunc recognizes instance ids the way each configured cloud's
// provider writes them.
func instanceIDFunc(cfg *config.Config) func(cloud, s string) bool {
	return func(cloud, s string) bool {
		c, ok := cfg.Cloud(cloud)
		if !ok {
			return false
		}
		t, ok := cfg.Registry().Cloud(c.Provider)
		if !ok {
			return false
		}
		isID, _ := t.IDFunc(s)
		return isID
	}
}
