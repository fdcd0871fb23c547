package steps_test

import (
	"reflect"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/steps"
)

// The built-in step types come in the order docs/workflows.md describes
// them, then the built-in commands' own.
func TestBuiltin(t *testing.T) {
	t.Parallel()
	got := switchboard.NewRegistry(steps.Builtin()...).StepKinds()
	want := []string{"notify", "approval", "extract", "set", "describe", "recall", "start", "stop", "reboot", "terminate", "run", "wait", "associate", "http", "fail", "sweep_departed", "instances"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("StepKinds() = %v", got)
	}
	got[0] = "mutated"
	if switchboard.NewRegistry(steps.Builtin()...).StepKinds()[0] != "notify" {
		t.Errorf("StepKinds shares its slice")
	}
}
