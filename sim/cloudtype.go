package sim

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Type declares the simulated cloud for the registry: `provider: sim`, its
// fleet under instances and its timings under sim.
var Type = switchboard.CloudType{
	Name:  "sim",
	Title: "the simulated cloud",
	Params: []switchboard.Param{
		{Name: "region"},
		{Name: "instances", Type: switchboard.TypeObjects, Example: "- { id: i-0123456789abcdef0, name: tools, state: stopped }", Fields: []switchboard.Param{
			{Name: "id", Required: true, Instance: true, Hint: "every simulated instance needs an id like i-0123456789abcdef0"},
			{Name: "name"},
			{Name: "state", Values: []string{"pending", "running", "stopping", "stopped"}},
			{Name: "type"},
			{Name: "tags", Type: switchboard.TypeTags},
			{Name: "public_ip", Type: switchboard.TypeIP},
			{Name: "private_ip", Type: switchboard.TypeIP},
		}},
		{Name: "sim", Type: switchboard.TypeObject, Fields: []switchboard.Param{
			{Name: "pending_duration", Type: switchboard.TypeDuration},
			{Name: "stopping_duration", Type: switchboard.TypeDuration},
			{Name: "shutting_down_duration", Type: switchboard.TypeDuration},
			{Name: "throttle", Type: switchboard.TypeBool},
			{Name: "latency", Type: switchboard.TypeDuration, Hint: "how long every API call takes, like latency: 200ms"},
		}},
	},
	CheckFunc: func(opts map[string]any) []switchboard.ParamProblem {
		var problems []switchboard.ParamProblem
		items, _ := opts["instances"].([]any)
		first := map[string]int{}
		for i, item := range items {
			m, _ := item.(map[string]any)
			id, _ := m["id"].(string)
			if id == "" {
				continue
			}
			if j, dup := first[id]; dup {
				problems = append(problems, switchboard.ParamProblem{Param: fmt.Sprintf("instances[%d].id", i),
					Msg: fmt.Sprintf("duplicate instance id %q (first at instances[%d])", id, j)})
				continue
			}
			first[id] = i
		}
		return problems
	},
	IDFunc: func(s string) (bool, string) {
		return validID(s), "an instance id (i- and 8 or 17 hex digits, like i-0123456789abcdef0)"
	},
	KnownIDsFunc: func(opts map[string]any) []string {
		var ids []string
		items, _ := opts["instances"].([]any)
		for _, item := range items {
			m, _ := item.(map[string]any)
			if id, ok := m["id"].(string); ok {
				ids = append(ids, id)
			}
		}
		return ids
	},
	NewFunc: newFromOptions,
}

// cloudOptions are a sim cloud's options as configured.
type cloudOptions struct {
	Region    string                 `json:"region"`
	Instances []switchboard.Instance `json:"instances"`
	Sim       struct {
		PendingDuration      switchboard.Duration `json:"pending_duration"`
		StoppingDuration     switchboard.Duration `json:"stopping_duration"`
		ShuttingDownDuration switchboard.Duration `json:"shutting_down_duration"`
		Throttle             *bool                `json:"throttle"`
		Latency              switchboard.Duration `json:"latency"`
	} `json:"sim"`
}

func newFromOptions(_ context.Context, c switchboard.CloudSpec) (switchboard.Provider, error) {
	var o cloudOptions
	if err := switchboard.DecodeOptions(c.Options, &o); err != nil {
		return nil, err
	}
	for i := range o.Instances {
		if o.Instances[i].State == "" {
			o.Instances[i].State = switchboard.StateRunning
		}
	}
	opts := Options{
		Instances:            o.Instances,
		PendingDuration:      durationOf(o.Sim.PendingDuration),
		StoppingDuration:     durationOf(o.Sim.StoppingDuration),
		ShuttingDownDuration: durationOf(o.Sim.ShuttingDownDuration),
		Latency:              durationOf(o.Sim.Latency),
	}
	if !c.Check {
		opts.StateFile = stateFile(c.DataDir, c.Name, o.Instances)
	}
	// Throttling is on unless the config turns it off.
	opts.Limits.Unlimited = o.Sim.Throttle != nil && !*o.Sim.Throttle
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return New(opts), nil
}

func durationOf(d switchboard.Duration) time.Duration { return time.Duration(d) }

// stateFile is where a simulated cloud remembers its fleet, so that a
// restart finds instances as it left them, as a real cloud would. The name
// carries a digest of the configured fleet: editing the fleet in the config
// starts from the new seed instead of an old state.
func stateFile(dataDir, name string, seed []switchboard.Instance) string {
	b, _ := json.Marshal(seed)
	sum := sha256.Sum256(b)
	return filepath.Join(dataDir, fmt.Sprintf("sim-%s-%x.json", name, sum[:4]))
}

// Unthrottled reports whether the simulated API limits are off, so that
// nothing in front of the cloud limits it either.
func (c *Cloud) Unthrottled() bool { return c.unlimited }
