package engine_test

import (
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/engine"
)

// FuzzParseCommand feeds slash command text, which comes straight from
// chat, to the parser: it must never panic, and what it accepts must be an
// action the command offers with targets it can name.
func FuzzParseCommand(f *testing.F) {
	spec := switchboard.CommandSpec{
		Name:    "/ec2",
		Actions: switchboard.AllActions,
		Instances: []switchboard.TargetSpec{
			{Alias: "tools", ID: "i-0123456789abcdef0", ElasticIP: "107.20.248.29"},
			{Alias: "web", Tags: map[string]string{"role": "web"}},
		},
	}
	for _, seed := range []string{"", "status", "start tools", "stop web --dry-run", "list env=dev", "reboot i-0123456789abcdef0",
		"stop role=web,env=prod", "START TOOLS", "start =", "stop a=b=c", "start \x00", "status tools tools web", "help"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		cmd, err := engine.ParseCommand(spec, text)
		if err != nil {
			if err.Message == "" {
				t.Errorf("refusal of %q has no sentence", text)
			}
			return
		}
		if !strings.Contains(strings.Join(spec.Actions, " "), cmd.Action) || len(cmd.Targets) == 0 {
			t.Errorf("accepted %q as %+v", text, cmd)
		}
		_ = cmd.AckText()
	})
}
