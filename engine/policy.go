package engine

import (
	"fmt"
	"sync"

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

// policyPrograms holds every policy condition compiled, by its text: a
// condition is compiled once (when the config is checked at start) and
// reused by every run that carries it.
var policyPrograms sync.Map // string → *vm.Program

func compilePolicy(rule switchboard.PolicyRule) (*vm.Program, error) {
	if p, ok := policyPrograms.Load(rule.If); ok {
		return p.(*vm.Program), nil
	}
	prog, err := expr.Compile(rule.If, expr.Env(policyEnv{}), expr.AsBool())
	if err != nil {
		return nil, err
	}
	policyPrograms.Store(rule.If, prog)
	return prog, nil
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

// policyFor returns the first rule of policy whose condition holds for in,
// or nil.
func policyFor(policy []switchboard.PolicyRule, in switchboard.PolicyInput) (*switchboard.PolicyRule, error) {
	env := policyEnv{Action: in.Action, User: in.User, Channel: in.Channel, Command: in.Command,
		Instance: instanceEnv{ID: in.Instance.ID, Name: in.Instance.Name, State: string(in.Instance.State), Type: in.Instance.Type, Tags: in.Instance.Tags}}
	if env.Instance.Tags == nil {
		env.Instance.Tags = map[string]string{}
	}
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
