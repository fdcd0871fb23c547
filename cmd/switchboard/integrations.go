package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/aws"
	"github.com/switchboardhq/switchboard/chef"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/consul"
)

// integrations holds the clients of the systems cleanup steps talk to,
// built once the config is loaded; the steps are registered before that,
// so they find their client here when they run.
type integrations struct {
	chef   *chef.Client
	consul *consul.Client
	dns    *aws.DNS
}

// steps returns the integrations' step types, each declared by its
// package and run with the client built from the config.
func (in *integrations) steps() []switchboard.StepType {
	return []switchboard.StepType{
		lateStep(chef.DeleteStep, &in.chef, "chef"),
		lateStep(consul.DeregisterStep, &in.consul, "consul"),
		lateStep(aws.DNSCleanupStep, &in.dns, "dns"),
	}
}

// lateStep declares the step type declare(nil) describes, requiring the config
// section, and runs declare(client) (and asks its Holdings) once the client
// is built.
func lateStep[C any](declare func(*C) switchboard.StepType, client **C, section string) switchboard.StepType {
	t := declare(nil)
	t.Requires = section
	t.RunFunc = func(ctx context.Context, s switchboard.StepRun) error {
		if *client == nil {
			return s.Fail(fmt.Sprintf("%s needs the %s section of the config, which this server was started without.", t.Kind, section), false)
		}
		return declare(*client).RunFunc(ctx, s)
	}
	// What the integration holds, for the sweep: nothing without the
	// section.
	t.Holdings = func(ctx context.Context) ([]switchboard.Holding, error) {
		if *client == nil {
			return nil, nil
		}
		if holdings := declare(*client).Holdings; holdings != nil {
			return holdings(ctx)
		}
		return nil, nil
	}
	return t
}

// build makes the clients the config asks for. A section whose settings
// cannot work is an error naming it.
func (in *integrations) build(cfg *config.Config) error {
	if c := cfg.Chef; c != nil {
		client, err := chef.New(chef.Options{ServerURL: c.ServerURL, ClientName: c.ClientName, Key: c.Key.Value(),
			SearchAttribute: c.SearchAttribute, Timeout: c.Timeout})
		if err != nil {
			return fmt.Errorf("%s:%d: %w", cfg.File, c.Line, err)
		}
		in.chef = client
	}
	if c := cfg.Consul; c != nil {
		client, err := consul.New(consul.Options{Address: c.Address, Token: c.Token.Value(), Datacenter: c.Datacenter,
			LockPrefixes: c.LockPrefixes, Timeout: c.Timeout, InstanceMeta: c.InstanceMeta, NodeName: c.NodeName})
		if err != nil {
			return fmt.Errorf("%s:%d: %w", cfg.File, c.Line, err)
		}
		in.consul = client
	}
	if c := cfg.DNS; c != nil {
		client, err := aws.NewDNS(context.Background(), aws.DNSOptions{
			Options: aws.Options{Region: c.Region, Endpoint: c.Endpoint, Profile: c.Profile, RoleARN: c.AssumeRole.RoleARN,
				ExternalID: c.AssumeRole.ExternalID, AccessKeyID: c.AccessKeyID, AccessKeySecret: c.AccessKeySecret.Value()},
			Zones: c.Zones, OwnerTXT: c.OwnerTXT, OwnerTXTName: c.OwnerTXTName, NamePattern: c.NamePattern,
		})
		if err != nil {
			return fmt.Errorf("%s:%d: dns: %w", cfg.File, c.Line, err)
		}
		in.dns = client
	}
	return in.checkSteps(cfg)
}

// checkSteps checks the workflows' steps of the integrations again, now
// that their clients are built. The config was checked with the steps as
// steps() declared them, without a client, and a step's check may need
// one: route53_cleanup with the owner_txt rule needs addresses, and
// without this a step that can never find a record passed check and serve
// and failed only when an instance died.
func (in *integrations) checkSteps(cfg *config.Config) error {
	var types []switchboard.StepType
	if in.chef != nil {
		types = append(types, chef.DeleteStep(in.chef))
	}
	if in.consul != nil {
		types = append(types, consul.DeregisterStep(in.consul))
	}
	if in.dns != nil {
		types = append(types, aws.DNSCleanupStep(in.dns))
	}
	var errs []error
	for _, wf := range cfg.Workflows {
		for _, part := range []struct {
			section string
			steps   []switchboard.StepSpec
		}{{"steps", wf.Steps}, {"on_error", wf.OnError}} {
			for i, st := range part.steps {
				for _, t := range types {
					if t.Kind != st.Kind || t.CheckFunc == nil {
						continue
					}
					var params map[string]any
					if err := json.Unmarshal(st.With, &params); err != nil {
						return fmt.Errorf("%s:%d: workflows.%s.%s[%d].%s: %w", cfg.File, st.Line, wf.Name, part.section, i, st.Kind, err)
					}
					for _, pp := range t.CheckFunc(params) {
						errs = append(errs, fmt.Errorf("%s:%d: workflows.%s.%s[%d].%s: %s: %s", cfg.File, st.Line, wf.Name, part.section, i, st.Kind, pp.Param, pp.Msg))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}
