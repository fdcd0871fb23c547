package engine

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
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

// output is one output of a step type.
type output struct {
	name string
	typ  reflect.Type
}

var (
	tString  = reflect.TypeFor[string]()
	tBool    = reflect.TypeFor[bool]()
	tInt     = reflect.TypeFor[int]()
	tStrings = reflect.TypeFor[[]string]()
	tTags    = reflect.TypeFor[map[string]string]()
	tAny     = reflect.TypeFor[any]()
)

// stepOutputs lists what each step type leaves for the steps after it.
// extract and set have outputs named by their parameters (see outputsOf).
var stepOutputs = map[string][]output{
	"notify":    {{"ts", tString}},
	"approval":  {{"approved", tBool}, {"decision", tString}, {"by", tStrings}},
	"describe":  {{"id", tString}, {"name", tString}, {"state", tString}, {"public_ip", tString}, {"private_ip", tString}, {"type", tString}, {"tags", tTags}},
	"start":     {{"ids", tStrings}, {"states", tTags}},
	"stop":      {{"ids", tStrings}, {"states", tTags}},
	"reboot":    {{"ids", tStrings}, {"states", tTags}},
	"terminate": {{"ids", tStrings}, {"states", tTags}},
	"run":       {{"ids", tStrings}, {"public_ip", tString}},
	"wait":      {{"state", tString}},
	"associate": nil,
	"http":      {{"status", tInt}, {"body", tString}, {"json", tAny}},
	"fail":      nil,
	"extract":   nil,
	"set":       nil,
}

// outputsOf returns the outputs of a configured step.
func outputsOf(step switchboard.StepSpec) ([]output, error) {
	switch step.Kind {
	case "extract":
		var p struct {
			Pattern string `json:"pattern"`
		}
		if err := json.Unmarshal(step.With, &p); err != nil {
			return nil, err
		}
		re, err := regexp.Compile(p.Pattern)
		if err != nil {
			return nil, fmt.Errorf("pattern: %w", err)
		}
		var outs []output
		for _, name := range re.SubexpNames() {
			if name != "" {
				outs = append(outs, output{name, tString})
			}
		}
		return outs, nil
	case "set":
		var p map[string]any
		if err := json.Unmarshal(step.With, &p); err != nil {
			return nil, err
		}
		var outs []output
		for name := range p {
			outs = append(outs, output{name, tString})
		}
		slices.SortFunc(outs, func(a, b output) int { return strings.Compare(a.name, b.name) })
		return outs, nil
	}
	outs, ok := stepOutputs[step.Kind]
	if !ok {
		return nil, fmt.Errorf("unknown step type %q", step.Kind)
	}
	return outs, nil
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
			outFields = append(outFields, field(j, o.name, o.typ))
		}
		stepFields = append(stepFields, field(i, s.id, reflect.StructOf(outFields)))
	}
	fields := []reflect.StructField{
		field(0, "event", reflect.TypeFor[eventEnv]()),
		field(1, "run", reflect.TypeFor[runEnv]()),
		field(2, "steps", reflect.StructOf(stepFields)),
	}
	if withError {
		fields = append(fields, field(3, "error", tString))
	}
	return reflect.StructOf(fields)
}

type namedOutputs struct {
	id      string
	outputs []output
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

// render evaluates the template.
func (t *template) render(env any) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.program == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := expr.Run(p.program, env)
		if err != nil {
			return "", fmt.Errorf("{{ %s }}: %w", p.text, err)
		}
		b.WriteString(format(v))
	}
	return b.String(), nil
}

func format(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []string:
		return strings.Join(v, ", ")
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = format(e)
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprint(v)
}

// compileCondition compiles an if: expression, which must be a boolean.
func compileCondition(code string, env any) (*vm.Program, error) {
	return expr.Compile(code, expr.Env(env), expr.AsBool())
}
