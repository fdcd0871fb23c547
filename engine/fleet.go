package engine

import (
	"cmp"
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Fleet describes every cloud's instances for the console's fleet view,
// each with the slash commands that may touch it. Answers are kept for
// MaxAge, so that consoles polling at once cost the cloud one describe.
type Fleet struct {
	Providers map[string]switchboard.Provider
	Commands  []switchboard.CommandSpec
	// Workflows started by a slash command may touch any instance of
	// their cloud.
	Workflows []switchboard.WorkflowSpec
	// MaxAge is how long an answer is kept; 2s when zero.
	MaxAge  time.Duration
	NowFunc func() time.Time

	mu   sync.Mutex
	at   time.Time
	last []switchboard.FleetCloud
}

// Describe returns each cloud, by name, with its instances sorted by name
// and id. A cloud that cannot be described comes back with the error's
// sentence and no instances; the others are still shown.
func (f *Fleet) Describe(ctx context.Context) []switchboard.FleetCloud {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.NowFunc != nil {
		now = f.NowFunc()
	}
	maxAge := f.MaxAge
	if maxAge <= 0 {
		maxAge = 2 * time.Second
	}
	if f.last != nil && now.Sub(f.at) < maxAge {
		return f.last
	}
	names := make([]string, 0, len(f.Providers))
	for name := range f.Providers {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]switchboard.FleetCloud, 0, len(names))
	for _, name := range names {
		fc := switchboard.FleetCloud{Name: name, Instances: []switchboard.FleetInstance{}}
		insts, err := f.Providers[name].DescribeInstances(ctx, switchboard.Filter{})
		if err != nil {
			fc.Error = switchboard.ErrorMessage(err)
		}
		for _, inst := range insts {
			fc.Instances = append(fc.Instances, switchboard.FleetInstance{Instance: inst, Commands: f.commandsFor(name, inst)})
		}
		slices.SortFunc(fc.Instances, func(a, b switchboard.FleetInstance) int {
			return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
		})
		out = append(out, fc)
	}
	f.at, f.last = now, out
	return out
}

// commandsFor lists the slash commands that may touch inst of cloud: the
// instance commands whose instances cover it, and the command-started
// workflows of its cloud.
func (f *Fleet) commandsFor(cloud string, inst switchboard.Instance) []string {
	cmds := []string{}
	for _, c := range f.Commands {
		if c.Cloud == cloud && switchboard.InScope(c.Instances, inst) {
			cmds = append(cmds, c.Name)
		}
	}
	for _, wf := range f.Workflows {
		if wf.Cloud == cloud && wf.Trigger.Command != "" && !slices.Contains(cmds, wf.Trigger.Command) {
			cmds = append(cmds, wf.Trigger.Command)
		}
	}
	return cmds
}
