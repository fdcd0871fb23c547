package consul

import (
	"context"
	"slices"
	"strings"

	"github.com/switchboardhq/switchboard"
)

// DeregisterStep is the consul_deregister step type: it destroys the
// sessions of a node (releasing or deleting the locks they held) and
// deregisters the node with its services and checks, in the Consul c talks
// to. A node already gone is success, so the step is safe to repeat.
//
//	steps:
//	  - id: consul
//	    consul_deregister: { node: '{{ steps.inst.name }}' }
//	  - notify: { text: "Removed {{ steps.consul.summary }}" }
//
// Outputs: node, deregistered (whether the node was registered), services,
// checks and sessions (ids), locks (the keys the sessions held, released or
// deleted), and summary ("Consul node and 1 session (released locks/web)").
// With dry_run: true it changes nothing and its outputs say what it would do.
func DeregisterStep(c *Client) switchboard.StepType {
	t := switchboard.StepType{
		Kind: "consul_deregister",
		Params: []switchboard.Param{
			{Name: "node", Required: true, Hint: "the Consul node name, like node: '{{ steps.inst.name }}'"},
			{Name: "dry_run", Type: switchboard.TypeBool},
		},
		Outputs: []switchboard.Output{
			{Name: "node", Type: switchboard.TypeText},
			{Name: "deregistered", Type: switchboard.TypeBool},
			{Name: "services", Type: switchboard.TypeStrings},
			{Name: "checks", Type: switchboard.TypeStrings},
			{Name: "sessions", Type: switchboard.TypeStrings},
			{Name: "locks", Type: switchboard.TypeStrings},
			{Name: "summary", Type: switchboard.TypeText},
		},
		RunFunc: func(ctx context.Context, s switchboard.StepRun) error {
			return runDeregister(ctx, c, s)
		},
	}
	if c != nil {
		// What a sweep checks for nodes of instances that are gone.
		t.Holdings = c.Holdings
	}
	return t
}

// deregisterProgress is what earlier attempts of one step destroyed: a
// retry no longer finds those sessions, and must still report them.
type deregisterProgress struct {
	Sessions []string `json:"sessions,omitempty"`
	Locks    []Lock   `json:"locks,omitempty"`
}

func runDeregister(ctx context.Context, c *Client, s switchboard.StepRun) error {
	var p struct {
		Node   string `json:"node"`
		DryRun bool   `json:"dry_run"`
	}
	if !s.Params(&p) {
		return nil
	}
	if p.Node == "" {
		return s.Fail("consul_deregister: node is empty, so there is no Consul node to clean up.", false)
	}
	var pr deregisterProgress
	if err := s.Progress(&pr); err != nil {
		return err
	}
	res, err := c.Cleanup(ctx, p.Node, p.DryRun)
	res = pr.merge(res)
	if err != nil {
		if !p.DryRun && len(res.Sessions) > len(pr.Sessions) {
			if err := s.Checkpoint(ctx, deregisterProgress{Sessions: res.Sessions, Locks: res.Locks}); err != nil {
				return err
			}
		}
		// Recorded when the step fails for good; a retried attempt's
		// records are dropped, and the attempt that ends records them.
		audit(s, res)
		return s.CloudError(err, "clean up Consul node "+p.Node)
	}
	audit(s, res)
	locks := make([]string, len(res.Locks))
	for i, l := range res.Locks {
		locks[i] = l.Key
	}
	return s.Done(map[string]any{
		"node": p.Node, "deregistered": res.Deregistered, "services": nonNil(res.Services), "checks": nonNil(res.Checks),
		"sessions": nonNil(res.Sessions), "locks": locks, "summary": res.Summary(),
	})
}

// audit records each destroyed session with the locks it held, and the
// deregistration.
func audit(s switchboard.StepRun, res Result) {
	if res.DryRun {
		return
	}
	for _, id := range res.Sessions {
		var released, deleted []string
		for _, l := range res.Locks {
			switch {
			case l.Session != id:
			case l.Deleted:
				deleted = append(deleted, l.Key)
			default:
				released = append(released, l.Key)
			}
		}
		detail := "node " + res.Node
		if len(released) > 0 {
			detail += "; released " + strings.Join(released, ", ")
		}
		if len(deleted) > 0 {
			detail += "; deleted " + strings.Join(deleted, ", ")
		}
		s.Audit(switchboard.AuditAction, "consul destroy session "+id, "ok", detail)
	}
	if res.Deregistered {
		s.Audit(switchboard.AuditAction, "consul deregister node "+res.Node, "ok", "services: "+strings.Join(res.Services, ", "))
	}
}

// merge adds what earlier attempts destroyed to res.
func (pr deregisterProgress) merge(res Result) Result {
	if res.DryRun {
		return res
	}
	for _, id := range pr.Sessions {
		if !slices.Contains(res.Sessions, id) {
			res.Sessions = append(res.Sessions, id)
		}
	}
	slices.Sort(res.Sessions)
	for _, l := range pr.Locks {
		if !slices.ContainsFunc(res.Locks, func(m Lock) bool { return m.Key == l.Key }) {
			res.Locks = append(res.Locks, l)
		}
	}
	slices.SortFunc(res.Locks, func(a, b Lock) int { return strings.Compare(a.Key, b.Key) })
	return res
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
