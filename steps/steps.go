// Package steps holds Switchboard's built-in workflow step types, one file
// each: notify, approval, extract, set, describe, start, stop, reboot,
// terminate, run, wait, associate, http and fail, and the "instances" step
// that carries out the built-in instance commands (/ec2 start tools). Each is
// a switchboard.StepType value; cmd/switchboard registers them. The package
// imports only the domain: everything a step does goes through
// switchboard.StepRun.
package steps

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Builtin returns the built-in step types in the order docs/workflows.md
// describes them, then the instances step of the built-in commands.
func Builtin() []switchboard.StepType {
	return []switchboard.StepType{
		Notify, Approval, Extract, Set, Describe, Recall,
		Start, Stop, Reboot, Terminate,
		Launch, Wait, Associate, HTTP, Fail, SweepDeparted,
		Instances,
	}
}

// instanceStates are the states a wait step may wait for.
var instanceStates = []string{"pending", "running", "stopping", "stopped", "terminated"}

// Parameters shared by the steps that select instances.
var (
	instanceParam  = switchboard.Param{Name: "instance", Instance: true}
	instancesParam = switchboard.Param{Name: "instances", Type: switchboard.TypeStrings, Instance: true}
	tagsParam      = switchboard.Param{Name: "tags", Type: switchboard.TypeTags}
	cloudParam     = switchboard.Param{Name: "cloud"}
)

// targetParams are the parameters of a step that selects instances.
type targetParams struct {
	Instance  string               `json:"instance"`
	Instances []string             `json:"instances"`
	Tags      map[string]string    `json:"tags"`
	Cloud     string               `json:"cloud"`
	Wait      switchboard.Duration `json:"wait"`
}

func (p targetParams) text() string {
	switch {
	case p.Instance != "":
		return p.Instance
	case len(p.Instances) > 0:
		return strings.Join(p.Instances, ", ")
	}
	return switchboard.TagText(p.Tags)
}

// progress is a workflow step's own progress, kept across waits.
type progress struct {
	Phase    string    `json:"phase"` // "" → acting → waiting
	IDs      []string  `json:"ids,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	// Outputs kept across the phases of one step (run's public IP...).
	Outputs map[string]any `json:"outputs,omitempty"`
}

// paramsWithCloud decodes a step's parameters into v and finds the cloud it
// acts on: cloud points into v at the cloud's name (empty: the run's
// cloud). It fails the step when the cloud is not configured.
func paramsWithCloud(s switchboard.StepRun, v any, cloud *string) (switchboard.Provider, string, bool) {
	if !s.Params(v) {
		return nil, "", false
	}
	p, name, ok := s.Cloud(*cloud)
	if !ok {
		_ = s.Fail(fmt.Sprintf("The cloud %q is not configured.", name), false)
	}
	return p, name, ok
}

// until checks the instances ids; it finishes the step (with the outputs
// in extra) when all are in state want, fails it at deadline, and parks the
// run otherwise.
func until(ctx context.Context, s switchboard.StepRun, cloud switchboard.Provider, ids []string, want switchboard.InstanceState, deadline time.Time, limit time.Duration, extra map[string]any) error {
	insts, err := cloud.DescribeInstances(ctx, switchboard.Filter{IDs: ids})
	if err != nil {
		return s.CloudError(err, "check "+strings.Join(ids, ", "))
	}
	states := map[string]string{}
	var late []string
	for _, inst := range insts {
		states[inst.ID] = string(inst.State)
		if inst.State != want {
			late = append(late, fmt.Sprintf("%s is %s", inst.Label(), inst.State))
		}
	}
	if len(late) == 0 {
		out := map[string]any{"ids": ids, "states": states}
		for k, v := range extra {
			out[k] = v
		}
		if len(ids) == 1 {
			out["state"] = states[ids[0]]
		}
		return s.Done(out)
	}
	if !s.Now().Before(deadline) {
		slices.Sort(late)
		return s.Fail(fmt.Sprintf("Waited %s for %s: %s.", limit, want, strings.Join(late, "; ")), false)
	}
	s.Wait(min(s.PollInterval(), max(deadline.Sub(s.Now()), time.Millisecond)))
	return nil
}

// labels names instances for a person, sorted.
func labels(insts []switchboard.Instance) string {
	ls := make([]string, len(insts))
	for i, inst := range insts {
		ls[i] = inst.Label()
	}
	slices.Sort(ls)
	return strings.Join(ls, ", ")
}

// idsOf lists the instances' ids.
func idsOf(insts []switchboard.Instance) []string {
	ids := make([]string, len(insts))
	for i, inst := range insts {
		ids[i] = inst.ID
	}
	return ids
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func gerund(action string) string {
	switch action {
	case "stop":
		return "stopping"
	case "reboot":
		return "rebooting"
	}
	return strings.TrimSuffix(action, "e") + "ing"
}

// problem is a ParamProblem list of one, or none when msg is empty.
func problem(param, msg string) []switchboard.ParamProblem {
	if msg == "" {
		return nil
	}
	return []switchboard.ParamProblem{{Param: param, Msg: msg}}
}
