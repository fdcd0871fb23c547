package config

import (
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/switchboardhq/switchboard"
)

var (
	policyKeys      = []string{"if", "deny", "approval"}
	policyApproval  = []string{"approvers", "quorum", "timeout", "on_timeout", "allow_requester"}
	policyOnTimeout = []string{"deny", "approve"}
)

// policy decodes a command's policy: rules that refuse an action, or make
// it wait for an approval, when their condition holds. The conditions are
// expressions that the engine compiles and type-checks; here they only
// need to be there.
func (d *decoder) policy(p pair, c *Config) []switchboard.PolicyRule {
	if p.key == nil {
		return nil
	}
	v := resolve(p.val)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		d.problemAt(p, `expected a list of rules like - { if: 'action == "stop"', deny: ask in #ops }, got %s`, kindName(v))
		return nil
	}
	var out []switchboard.PolicyRule
	for i, item := range v.Content {
		rp := pair{name: p.name, key: p.key, val: item, path: itemPath(p.path, i)}
		out = append(out, d.policyRule(rp, c))
	}
	return out
}

func (d *decoder) policyRule(rp pair, c *Config) switchboard.PolicyRule {
	r := switchboard.PolicyRule{Line: rp.line()}
	f := d.fields(rp.val, rp.path, rp.line(), policyKeys...)

	ifPath := childPath(rp.path, "if")
	if q, ok := f["if"]; ok {
		if s, ok := d.str(q); ok && strings.TrimSpace(s) != "" {
			r.If = s
		} else if d.problems.none(q.path) {
			d.problemAt(q, `is empty: a condition like 'action == "stop" && instance.tags.env == "prod"'`)
		}
	} else if d.problems.none(rp.path) {
		d.add(rp.line(), ifPath, `is required: the condition under which the rule applies, like if: 'action == "stop" && instance.tags.env == "prod"'`)
	}

	dp, hasDeny := f["deny"]
	ap, hasApproval := f["approval"]
	switch {
	case hasDeny && hasApproval:
		d.add(rp.line(), rp.path, "has both deny and approval; a rule either refuses (deny) or waits for an approval, not both")
	case !hasDeny && !hasApproval && d.problems.none(rp.path):
		d.add(rp.line(), rp.path, "needs deny (the reason to refuse, like deny: ask in #ops) or approval (who must approve, like approval: { approvers: [group:ops] })")
	}
	if hasDeny {
		if s, ok := d.str(dp); ok && strings.TrimSpace(s) != "" {
			r.Deny = s
		} else if d.problems.none(dp.path) {
			d.problemAt(dp, "is empty: the reason shown to the person refused, like deny: only the on-call engineer reboots from chat")
		}
	}
	if hasApproval {
		r.Approval = d.policyApproval(ap, c)
	}
	return r
}

func (d *decoder) policyApproval(p pair, c *Config) *switchboard.ApprovalRule {
	a := &switchboard.ApprovalRule{Quorum: 1, OnTimeout: "deny"}
	v := resolve(p.val)
	if v == nil || v.Kind != yaml.MappingNode {
		if isNull(v) {
			d.problemAt(p, "is empty: say who must approve, like approval: { approvers: [group:ops] }")
		} else {
			d.problemAt(p, "expected a mapping like { approvers: [group:ops], quorum: 1 }, got %s", kindName(v))
		}
		return a
	}
	f := d.fields(p.val, p.path, p.line(), policyApproval...)

	if q, ok := f["approvers"]; ok {
		users, bad := d.users(q, c)
		if len(users) == 0 && !bad {
			d.problemAt(q, "nobody could approve; list users or group:NAME")
		}
		a.Approvers = users
	} else if d.problems.none(p.path) {
		d.add(p.line(), childPath(p.path, "approvers"), "is required: who may approve, like approvers: [group:ops]")
	}
	if q, ok := f["quorum"]; ok {
		if s, ok := d.str(q); ok {
			n, err := strconv.Atoi(s)
			switch {
			case err != nil:
				d.problemAt(q, "expected a whole number, got %s", d.show(q, s))
			case n < 1:
				d.problemAt(q, "must be at least 1, got %d", n)
			case len(a.Approvers) > 0 && n > len(a.Approvers):
				d.problemAt(q, "is %d but only %d approvers are listed", n, len(a.Approvers))
			default:
				a.Quorum = n
			}
		}
	}
	if q, ok := f["timeout"]; ok {
		a.Timeout, _ = d.duration(q)
	}
	if q, ok := f["on_timeout"]; ok {
		if s, ok := d.str(q); ok {
			if slices.Contains(policyOnTimeout, s) {
				a.OnTimeout = s
			} else if sug := suggest(s, policyOnTimeout); sug != "" {
				d.problemAt(q, "must be one of %s, got %s; did you mean %q?", strings.Join(policyOnTimeout, ", "), d.show(q, s), sug)
			} else {
				d.problemAt(q, "must be one of %s, got %s", strings.Join(policyOnTimeout, ", "), d.show(q, s))
			}
		}
	}
	if q, ok := f["allow_requester"]; ok {
		a.AllowRequester, _ = d.boolean(q)
	}
	return a
}
