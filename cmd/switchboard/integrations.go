package main

import (
	"context"
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
// section, and runs declare(client) once the client is built.
func lateStep[C any](declare func(*C) switchboard.StepType, client **C, section string) switchboard.StepType {
	t := declare(nil)
	t.Requires = section
	t.RunFunc = func(ctx context.Context, s switchboard.StepRun) error {
		if *client == nil {
			return s.Fail(fmt.Sprintf("%s needs the %s section of the config, which this server was started without.", t.Kind, section), false)
		}
		return declare(*client).RunFunc(ctx, s)
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
			LockPrefixes: c.LockPrefixes, Timeout: c.Timeout})
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
	return nil
}
