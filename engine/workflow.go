package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/expr-lang/expr/vm"

	"github.com/switchboardhq/switchboard"
)

// Problem is something wrong with a configured workflow, at the line of the
// step (or the workflow) it concerns.
type Problem struct {
	Line int
	Key  string // workflows.NAME.steps[N].TYPE.PARAM
	Msg  string
}

// Plan turns a workflow's steps into the plan a run carries: the steps, then
// the on_error steps.
func Plan(spec switchboard.WorkflowSpec) []switchboard.Step {
	var plan []switchboard.Step
	step := func(s switchboard.StepSpec, section string) switchboard.Step {
		st := switchboard.Step{Kind: s.Kind, With: s.With, ID: s.ID, If: s.If, Section: section}
		switch s.Kind {
		case "start", "stop", "reboot", "terminate":
			st.Policy = spec.Policy
		}
		return st
	}
	for _, s := range spec.Steps {
		plan = append(plan, step(s, ""))
	}
	for _, s := range spec.OnError {
		plan = append(plan, step(s, sectionOnError))
	}
	return plan
}

const sectionOnError = "on_error"

// CheckWorkflow compiles every condition and template of a workflow against
// what it can see, and reports each problem with the step's line.
func CheckWorkflow(reg *switchboard.Registry, spec switchboard.WorkflowSpec) []Problem {
	var problems []Problem
	specs := append(append([]switchboard.StepSpec(nil), spec.Steps...), spec.OnError...)
	plan := Plan(spec)
	for i, s := range specs {
		section, index := "steps", i
		if i >= len(spec.Steps) {
			section, index = "on_error", i-len(spec.Steps)
		}
		key := fmt.Sprintf("workflows.%s.%s[%d].%s", spec.Name, section, index, s.Kind)
		if _, err := compileStep(reg, plan, i); err != nil {
			problems = append(problems, Problem{Line: s.Line, Key: key, Msg: err.Error()})
		}
	}
	for i, rule := range spec.Policy {
		if _, err := compilePolicy(rule); err != nil {
			problems = append(problems, Problem{Line: rule.Line, Key: fmt.Sprintf("workflows.%s.policy[%d].if", spec.Name, i), Msg: firstLine(err)})
		}
	}
	return problems
}

// compiledStep is a step of a plan with its condition and every template in
// its parameters compiled against what it can see. A step with neither has
// no env: its parameters are used as written.
type compiledStep struct {
	env       reflect.Type
	condition *vm.Program
	templates map[string]*template // by the template's text
}

// literal reports whether a step has no condition and no template, so that
// running it needs nothing compiled (the built-in commands' steps).
func literal(step switchboard.Step) bool {
	return step.If == "" && !bytes.Contains(step.With, []byte("{{"))
}

// compileStep compiles step i of plan. What a step sees is the event, the
// run, the outputs of the steps with an id before it, and in on_error the
// error.
func compileStep(reg *switchboard.Registry, plan []switchboard.Step, i int) (*compiledStep, error) {
	var before []namedOutputs
	for _, s := range plan[:i] {
		if s.ID == "" {
			continue
		}
		outs, err := outputsOf(reg, s)
		if err != nil {
			continue // reported at that step
		}
		before = append(before, namedOutputs{id: s.ID, outputs: outs})
	}
	step := plan[i]
	if _, err := outputsOf(reg, step); err != nil {
		return nil, err
	}
	t, _ := reg.Step(step.Kind)
	cs := &compiledStep{env: envType(before, step.Section == sectionOnError), templates: map[string]*template{}}
	sample := reflect.New(cs.env).Elem().Interface()
	if step.If != "" {
		if err := checkReferences(step.If, before, step.Section == sectionOnError); err != nil {
			return nil, fmt.Errorf("if: %w", err)
		}
		prog, err := compileCondition(step.If, sample)
		if err != nil {
			return nil, fmt.Errorf("if: %s", firstLine(err))
		}
		cs.condition = prog
	}
	var params any
	if len(step.With) > 0 {
		if err := json.Unmarshal(step.With, &params); err != nil {
			return nil, fmt.Errorf("parameters: %w", err)
		}
	}
	var firstErr error
	walkStrings(params, "", func(path, s string) {
		if firstErr != nil || !strings.Contains(s, "{{") {
			return
		}
		if p, ok := t.Param(path); ok && p.Pattern {
			return // a regular expression, not a template
		}
		for _, m := range templateExpr.FindAllStringSubmatch(s, -1) {
			if err := checkReferences(m[1], before, step.Section == sectionOnError); err != nil {
				firstErr = fmt.Errorf("%s: %w", path, err)
				return
			}
		}
		t, err := compileTemplate(s, sample)
		if err != nil {
			firstErr = fmt.Errorf("%s: %s", path, firstLine(err))
			return
		}
		cs.templates[s] = t
	})
	if firstErr != nil {
		return nil, firstErr
	}
	return cs, nil
}

// walkStrings calls fn for every string in a decoded JSON value, with its
// path (a.b[2]).
func walkStrings(v any, path string, fn func(path, s string)) {
	switch v := v.(type) {
	case string:
		fn(path, v)
	case map[string]any:
		for k, e := range v {
			p := k
			if path != "" {
				p = path + "." + k
			}
			walkStrings(e, p, fn)
		}
	case []any:
		for i, e := range v {
			walkStrings(e, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

// renderStrings replaces every templated string in a decoded JSON value.
func renderStrings(v any, render func(s string) (string, error)) (any, error) {
	switch v := v.(type) {
	case string:
		return render(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			r, err := renderStrings(e, render)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			r, err := renderStrings(e, render)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

// envValue builds what the expressions of a step see, from the run.
func (cs *compiledStep) envValue(run *switchboard.Run) (any, error) {
	env := reflect.New(cs.env)
	doc := map[string]any{"event": eventOf(run), "run": runEnv{ID: run.ID, Workflow: run.Workflow}}
	steps := map[string]json.RawMessage{}
	for id, raw := range run.Vars {
		if !strings.HasPrefix(id, "_") {
			steps[id] = raw
		}
	}
	doc["steps"] = steps
	if cs.env.NumField() > 3 {
		doc["error"] = run.Error
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, env.Interface()); err != nil {
		return nil, fmt.Errorf("step outputs of run %s: %w", run.ID, err)
	}
	return env.Elem().Interface(), nil
}

// eventOf is what expressions see as `event`.
func eventOf(run *switchboard.Run) eventEnv {
	req := run.Request
	e := eventEnv{Source: req.Source, Text: req.Text, Args: strings.Fields(req.Text), User: req.UserID, Channel: req.ChannelID}
	if ev := req.Event; ev != nil {
		e.Source, e.Kind, e.Subject, e.From, e.Body = ev.Source, ev.Kind, ev.Subject, ev.From, ev.Body
		if len(ev.Data) > 0 {
			_ = json.Unmarshal(ev.Data, &e.Data)
		}
		e.Instances = eventInstances(ev)
	}
	if e.Args == nil {
		e.Args = []string{}
	}
	return e
}

var eventInstanceID = regexp.MustCompile(`\bi-(?:[0-9a-f]{17}|[0-9a-f]{8})\b`)

// eventInstances finds the instance ids an event names: in its JSON (EC2
// state-change detail, AWS Health affected entities, resource ARNs) or, for a
// mail, in its subject and body.
func eventInstances(ev *switchboard.Event) []string {
	text := string(ev.Data)
	if text == "" {
		text = ev.Subject + "\n" + ev.Body
	}
	seen := map[string]bool{}
	ids := []string{}
	for _, id := range eventInstanceID.FindAllString(text, -1) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

var stepReference = regexp.MustCompile(`\bsteps\.([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?`)

// checkReferences reports, in words a person can act on, a reference to a
// step that does not come earlier or to an output its step does not have,
// and error outside on_error.
func checkReferences(code string, before []namedOutputs, inOnError bool) error {
	for _, m := range stepReference.FindAllStringSubmatch(code, -1) {
		var found *namedOutputs
		for i := range before {
			if before[i].id == m[1] {
				found = &before[i]
			}
		}
		if found == nil {
			ids := make([]string, len(before))
			for i, b := range before {
				ids[i] = b.id
			}
			if len(ids) == 0 {
				return fmt.Errorf("steps.%s: no step with an id comes before this one", m[1])
			}
			return fmt.Errorf("steps.%s: no step with that id comes before this one (steps before: %s)", m[1], strings.Join(ids, ", "))
		}
		if m[2] == "" {
			continue
		}
		var names []string
		for _, o := range found.outputs {
			names = append(names, o.Name)
			if o.Name == m[2] {
				names = nil
				break
			}
		}
		if names != nil {
			return fmt.Errorf("steps.%s has no output %s (its outputs: %s)", m[1], m[2], strings.Join(names, ", "))
		}
		if len(found.outputs) == 0 {
			return fmt.Errorf("steps.%s has no outputs", m[1])
		}
	}
	if !inOnError && regexp.MustCompile(`(^|[^.\w])error\b`).MatchString(code) {
		return fmt.Errorf("error is only known in on_error steps")
	}
	return nil
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
