package engine

import (
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/switchboardhq/switchboard"
)

// policyEnv is what a policy rule's condition sees.
type policyEnv struct {
	Action   string      `expr:"action"`
	User     string      `expr:"user"`
	Channel  string      `expr:"channel"`
	Command  string      `expr:"command"`
	Instance instanceEnv `expr:"instance"`
}

type instanceEnv struct {
	ID    string            `expr:"id"`
	Name  string            `expr:"name"`
	State string            `expr:"state"`
	Type  string            `expr:"type"`
	Tags  map[string]string `expr:"tags"`
}

func compilePolicy(rule switchboard.PolicyRule) (*vm.Program, error) {
	return expr.Compile(rule.If, expr.Env(policyEnv{}), expr.AsBool())
}

// CheckPolicy compiles a command's policy rules and reports each problem at
// the rule's line.
func CheckPolicy(spec switchboard.CommandSpec) []Problem {
	var problems []Problem
	for i, rule := range spec.Policy {
		if _, err := compilePolicy(rule); err != nil {
			problems = append(problems, Problem{Line: rule.Line, Key: fmt.Sprintf("commands.%s.policy[%d].if", spec.Name, i), Msg: firstLine(err)})
		}
	}
	return problems
}

// policyFor returns the first rule of policy whose condition holds for
// action on inst, or nil.
func policyFor(policy []switchboard.PolicyRule, env policyEnv) (*switchboard.PolicyRule, error) {
	for i := range policy {
		prog, err := compilePolicy(policy[i])
		if err != nil {
			return nil, fmt.Errorf("policy rule %d: %w", i+1, err)
		}
		ok, err := expr.Run(prog, env)
		if err != nil {
			return nil, fmt.Errorf("policy rule %d: %w", i+1, err)
		}
		if ok == true {
			return &policy[i], nil
		}
	}
	return nil, nil
}

// applyPolicy sorts the instances an action would change: refused by a
// rule (an outcome each), waiting for an approval (with the first approval
// rule that asked for it), or free to go.
func (st *instancesStep) applyPolicy(acting []switchboard.Instance) (free, needApproval []switchboard.Instance, rule *switchboard.ApprovalRule, outs []Outcome, err error) {
	req := st.run.Request
	for _, inst := range acting {
		env := policyEnv{Action: st.cmd.Action, User: req.UserID, Channel: req.ChannelID, Command: st.cmd.Command,
			Instance: instanceEnv{ID: inst.ID, Name: inst.Name, State: string(inst.State), Type: inst.Type, Tags: inst.Tags}}
		if env.Instance.Tags == nil {
			env.Instance.Tags = map[string]string{}
		}
		r, err := policyFor(st.cmd.Policy, env)
		switch {
		case err != nil:
			return nil, nil, nil, nil, err
		case r == nil:
			free = append(free, inst)
		case r.Deny != "":
			outs = append(outs, Outcome{ID: inst.ID, Label: inst.Label(), Result: "refused by policy", Detail: r.Deny,
				Text: fmt.Sprintf("Not %s %s: %s", gerund(st.cmd.Action), inst.Label(), r.Deny)})
			st.audit(switchboard.AuditDecision, st.cmd.Action+" "+inst.ID, "refused", "policy: "+r.Deny)
		case r.Approval != nil:
			needApproval = append(needApproval, inst)
			if rule == nil {
				rule = r.Approval
			}
		default:
			free = append(free, inst)
		}
	}
	return free, needApproval, rule, outs, nil
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
