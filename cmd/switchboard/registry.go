package main

import (
	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/steps"
)

// newRegistry lists every step type workflows may use: the built-in ones,
// then each integration's. An integration's step type is registered with
// one line here; config and the engine find it through the registry.
func newRegistry() *switchboard.Registry {
	return switchboard.NewRegistry(steps.Builtin()...)
}
