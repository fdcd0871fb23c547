package config_test

import (
	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/steps"
)

// registry holds the built-in step types, as cmd/switchboard registers them.
var registry = switchboard.NewRegistry(steps.Builtin()...)
