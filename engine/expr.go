package engine

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/switchboardhq/switchboard"
)

// Expressions in workflows are expr-lang expressions, checked when the
// config is loaded against the exact shape of what they can see: the event,
// the run, and the outputs of the steps before them. That shape is a Go
// struct type built per step position (reflect.StructOf), so a misspelt
// output or a step that comes later is a compile error with the step's line,
// not a surprise at 3 a.m.

// eventEnv is what an expression sees of the trigger as `event`.
type eventEnv struct {
	Source    string         `expr:"source" json:"source"`
	Kind      string         `expr:"kind" json:"kind"`
	Subject   string         `expr:"subject" json:"subject"`
	From      string         `expr:"from" json:"from"`
	Body      string         `expr:"body" json:"body"`
	Text      string         `expr:"text" json:"text"`
	Args      []string       `expr:"args" json:"args"`
	User      string         `expr:"user" json:"user"`
	Channel   string         `expr:"channel" json:"channel"`
	Instances []string       `expr:"instances" json:"instances"`
	Data      map[string]any `expr:"data" json:"data"`
}

type runEnv struct {
	ID       string `expr:"id" json:"id"`
	Workflow string `expr:"workflow" json:"workflow"`
}

// typeOf is the Go type expressions see for a value type.
func typeOf(t switchboard.ValueType) reflect.Type {
	switch t {
	case switchboard.TypeBool:
		return reflect.TypeFor[bool]()
	case switchboard.TypeInt:
		return reflect.TypeFor[int]()
	case switchboard.TypeStrings, switchboard.TypeUsers:
		return reflect.TypeFor[[]string]()
	case switchboard.TypeTags:
		return reflect.TypeFor[map[string]string]()
	case switchboard.TypeAny:
		return reflect.TypeFor[any]()
	case switchboard.TypeCodes:
		return reflect.TypeFor[[]int]()
	}
	return reflect.TypeFor[string]()
}

// outputsOf returns the outputs of a step of a plan.
func outputsOf(reg *switchboard.Registry, step switchboard.Step) ([]switchboard.Output, error) {
	t, ok := reg.Step(step.Kind)
	if !ok {
		return nil, fmt.Errorf("unknown step type %q", step.Kind)
	}
	var params map[string]any
	if len(step.With) > 0 {
		if err := json.Unmarshal(step.With, &params); err != nil {
			return nil, err
		}
	}
	return t.OutputsOf(params)
}

// field makes a struct field named for expr and JSON.
func field(i int, name string, typ reflect.Type) reflect.StructField {
	return reflect.StructField{
		Name: fmt.Sprintf("F%d", i),
		Type: typ,
		Tag:  reflect.StructTag(fmt.Sprintf(`expr:%q json:%q`, name, name)),
	}
}

// envType builds the type of what an expression sees when it stands in a
// step after those in before (each with its outputs): event, run, steps, and
// error when withError.
func envType(before []namedOutputs, withError bool) reflect.Type {
	var stepFields []reflect.StructField
	for i, s := range before {
		var outFields []reflect.StructField
		for j, o := range s.outputs {
			outFields = append(outFields, field(j, o.Name, typeOf(o.Type)))
		}
		stepFields = append(stepFields, field(i, s.id, reflect.StructOf(outFields)))
	}
	fields := []reflect.StructField{
		field(0, "event", reflect.TypeFor[eventEnv]()),
		field(1, "run", reflect.TypeFor[runEnv]()),
		field(2, "steps", reflect.StructOf(stepFields)),
	}
	if withError {
		fields = append(fields, field(3, "error", typeOf(switchboard.TypeText)))
	}
	return reflect.StructOf(fields)
}

type namedOutputs struct {
	id      string
	outputs []switchboard.Output
}

// template is a string with {{ expression }} parts.
type template struct {
	parts []templatePart
}

type templatePart struct {
	text    string
	program *vm.Program // nil for a literal part
}

var templateExpr = regexp.MustCompile(`\{\{(.*?)\}\}`)

// compileTemplate compiles every {{ expression }} in s against env.
func compileTemplate(s string, env any) (*template, error) {
	t := &template{}
	last := 0
	for _, m := range templateExpr.FindAllStringSubmatchIndex(s, -1) {
		if m[0] > last {
			t.parts = append(t.parts, templatePart{text: s[last:m[0]]})
		}
		code := strings.TrimSpace(s[m[2]:m[3]])
		prog, err := expr.Compile(code, expr.Env(env))
		if err != nil {
			return nil, fmt.Errorf("in {{ %s }}: %w", code, err)
		}
		t.parts = append(t.parts, templatePart{text: code, program: prog})
		last = m[1]
	}
	if last < len(s) {
		t.parts = append(t.parts, templatePart{text: s[last:]})
	}
	return t, nil
}

// render evaluates the template; literal passes each literal part (the
// text the configuration wrote) through, say to resolve secret references.
func (t *template) render(env any, literal func(string) (string, error)) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.program == nil {
			s, err := literal(p.text)
			if err != nil {
				return "", err
			}
			b.WriteString(s)
			continue
		}
		v, err := expr.Run(p.program, env)
		if err != nil {
			return "", fmt.Errorf("{{ %s }}: %w", p.text, err)
		}
		b.WriteString(switchboard.FormatValue(v))
	}
	return b.String(), nil
}

// compileCondition compiles an if: expression, which must be a boolean.
func compileCondition(code string, env any) (*vm.Program, error) {
	return expr.Compile(code, expr.Env(env), expr.AsBool())
}
