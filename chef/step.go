package chef

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/switchboardhq/switchboard"
)

// DeleteStep is the chef_delete step type: it deletes a node and the API
// client of the same name from the Chef server c talks to. The node is
// named (node: '{{ steps.inst.name }}', an FQDN, an instance id, whatever
// the fleet names its nodes by) or found by searching nodes for an instance
// id (instance: '{{ event.instances[0] }}'). What is already gone counts as
// deleted, so the step is safe to repeat.
//
//	steps:
//	  - id: chef
//	    chef_delete: { instance: '{{ event.instances[0] }}' }
//	  - notify: { text: "Removed {{ steps.chef.summary }}" }
//
// Outputs: node (the name), deleted and absent (of "node", "client"), and
// summary ("Chef node and client"). With dry_run: true it deletes nothing and
// its outputs say what it would delete.
func DeleteStep(c *Client) switchboard.StepType {
	t := switchboard.StepType{
		Kind: "chef_delete",
		Params: []switchboard.Param{
			{Name: "node", Hint: "the Chef node (and client) name, like node: '{{ steps.inst.name }}'"},
			{Name: "instance", Hint: "an instance id to search Chef nodes for, like instance: '{{ event.instances[0] }}'"},
			{Name: "dry_run", Type: switchboard.TypeBool},
		},
		Outputs: []switchboard.Output{
			{Name: "node", Type: switchboard.TypeText},
			{Name: "deleted", Type: switchboard.TypeStrings},
			{Name: "absent", Type: switchboard.TypeStrings},
			{Name: "summary", Type: switchboard.TypeText},
		},
		CheckFunc: checkDeleteParams,
		RunFunc: func(ctx context.Context, s switchboard.StepRun) error {
			return runDelete(ctx, c, s)
		},
	}
	if c != nil {
		// What a sweep checks for nodes of instances that are gone.
		t.Holdings = c.Holdings
	}
	return t
}

func checkDeleteParams(params map[string]any) []switchboard.ParamProblem {
	node, _ := params["node"].(string)
	inst, _ := params["instance"].(string)
	switch {
	case node == "" && inst == "":
		return []switchboard.ParamProblem{{Param: "node", Msg: "a chef_delete step needs node (the node name, like '{{ steps.inst.name }}') or instance (an instance id to search nodes for, like '{{ event.instances[0] }}')"}}
	case node != "" && inst != "":
		return []switchboard.ParamProblem{{Param: "instance", Msg: "a chef_delete step takes node or instance, not both: node names the node, instance finds it by search"}}
	}
	return nil
}

// deleteProgress is kept across retries of one chef_delete step: the node
// a search found (after its deletion the search finds it no more) and what
// earlier attempts deleted.
type deleteProgress struct {
	Node    string   `json:"node,omitempty"`
	Deleted []string `json:"deleted,omitempty"`
}

func runDelete(ctx context.Context, c *Client, s switchboard.StepRun) error {
	var p struct {
		Node     string `json:"node"`
		Instance string `json:"instance"`
		DryRun   bool   `json:"dry_run"`
	}
	if !s.Params(&p) {
		return nil
	}
	var pr deleteProgress
	if err := s.Progress(&pr); err != nil {
		return err
	}
	name, detail := p.Node, ""
	switch {
	case name != "":
	case pr.Node != "":
		name = pr.Node
	case p.Instance == "":
		return s.Fail("chef_delete: both node and instance are empty, so there is no Chef node to delete.", false)
	default:
		names, err := c.FindNode(ctx, p.Instance)
		if err != nil {
			return s.CloudError(err, "search Chef nodes for "+p.Instance)
		}
		switch len(names) {
		case 0:
			// A report lists every system: "no Chef node or client".
			return s.Done(map[string]any{"node": "", "deleted": []string{}, "absent": []string{"node"}, "summary": Result{DryRun: p.DryRun}.Summary()})
		case 1:
			name = names[0]
		default:
			return s.Fail(fmt.Sprintf("Chef nodes %s all have %s %s; name the one to delete with node:.",
				strings.Join(names, ", "), c.opts.SearchAttribute, p.Instance), false)
		}
		if !p.DryRun {
			// Once the node is deleted, no search finds it: a retry must
			// know which client to delete.
			pr.Node = name
			if err := s.Checkpoint(ctx, pr); err != nil {
				return err
			}
		}
		detail = "found by " + c.opts.SearchAttribute + " " + p.Instance
	}

	res, err := c.Cleanup(ctx, name, p.DryRun)
	res = pr.merge(res)
	if err != nil {
		if !p.DryRun && len(res.Deleted) > len(pr.Deleted) {
			pr.Node, pr.Deleted = name, res.Deleted
			if err := s.Checkpoint(ctx, pr); err != nil {
				return err
			}
		}
		// Recorded when the step fails for good; a retried attempt's
		// records are dropped, and the attempt that ends records them.
		audit(s, res, detail)
		return s.CloudError(err, "delete Chef node "+name)
	}
	audit(s, res, detail)
	return s.Done(map[string]any{"node": name, "deleted": nonNil(res.Deleted), "absent": nonNil(res.Absent), "summary": res.Summary()})
}

// audit records each deletion.
func audit(s switchboard.StepRun, res Result, detail string) {
	if res.DryRun {
		return
	}
	for _, kind := range res.Deleted {
		s.Audit(switchboard.AuditAction, "chef delete "+kind+" "+res.Node, "ok", detail)
	}
}

// merge counts what earlier attempts deleted as deleted, not absent.
func (pr deleteProgress) merge(res Result) Result {
	if res.DryRun || len(pr.Deleted) == 0 {
		return res
	}
	var deleted, absent []string
	for _, kind := range []string{"node", "client"} {
		switch {
		case slices.Contains(res.Deleted, kind) || slices.Contains(pr.Deleted, kind):
			deleted = append(deleted, kind)
		case slices.Contains(res.Absent, kind):
			absent = append(absent, kind)
		}
	}
	res.Deleted, res.Absent = deleted, absent
	return res
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
