package config

import (
	"bytes"
	"encoding/json"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboardhq/switchboard"
)

// This file decodes the steps of a workflow: one step-type key with its
// parameters, checked against the tables of docs/workflows.md, plus id and
// if. Expressions ({{ ... }}, if) are kept as written for the engine.

// stepScope is what the steps of one workflow share.
type stepScope struct {
	cfg *Config
	// cloud is the workflow's cloud, nil when it has none.
	cloud *Cloud
	// ids maps each step id to its line, across steps and on_error.
	ids map[string]int
	// needsCloud is set by a step that acts on the workflow's cloud.
	needsCloud bool
}

var (
	// reservedIDs are the names expressions see besides steps.ID.
	reservedIDs = []string{"event", "run", "steps", "error"}
	stepID      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// workflowStep returns the step type a workflow may use by that name: any
// registered type but the built-in commands' own.
func (s *stepScope) workflowStep(kind string) (*switchboard.StepType, bool) {
	t, ok := s.cfg.registry.Step(kind)
	return t, ok && !t.Internal
}

// stepKinds lists the step types a workflow may use.
func (s *stepScope) stepKinds() []string {
	var kinds []string
	for _, k := range s.cfg.registry.StepKinds() {
		if _, ok := s.workflowStep(k); ok {
			kinds = append(kinds, k)
		}
	}
	return kinds
}

// templated reports whether s holds a {{ expression }}, whose value is
// known only when the step runs.
func templated(s string) bool { return strings.Contains(s, "{{") }

func (d *decoder) steps(p pair, s *stepScope) []switchboard.StepSpec {
	v := resolve(p.val)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		d.problemAt(p, "expected a list of steps like - notify: { text: hello }, got %s", kindName(v))
		return nil
	}
	var out []switchboard.StepSpec
	for i, item := range v.Content {
		out = append(out, d.step(pair{name: p.name, key: p.key, val: item, path: itemPath(p.path, i)}, s))
	}
	return out
}

func (d *decoder) step(p pair, s *stepScope) switchboard.StepSpec {
	st := switchboard.StepSpec{Line: p.line()}
	kinds := s.stepKinds()
	all := strings.Join(kinds, ", ")
	if v := resolve(p.val); v == nil || v.Kind != yaml.MappingNode {
		d.problemAt(p, "expected a step: a mapping with one step type, like - notify: { text: hello }; got %s", kindName(p.val))
		return st
	}
	var types []pair
	unknown := false
	for _, kp := range d.pairs(p.val, p.path, p.line()) {
		switch _, isType := s.workflowStep(kp.name); {
		case kp.name == "id":
			st.ID = d.stepID(kp, s)
		case kp.name == "if":
			if cond, ok := d.str(kp); ok {
				if strings.TrimSpace(cond) == "" {
					d.problemAt(kp, "is empty; remove it to always run the step")
				}
				st.If = cond
			}
		case isType:
			types = append(types, kp)
		default:
			unknown = true
			if sug := suggest(kp.name, kinds); sug != "" {
				d.add(kp.key.Line, kp.path, "unknown step type %q; step types: %s; did you mean %q?", kp.name, all, sug)
			} else {
				d.add(kp.key.Line, kp.path, "unknown step type %q; step types: %s", kp.name, all)
			}
		}
	}
	switch {
	case len(types) == 0 && !unknown:
		d.add(st.Line, p.path, "needs a step type: one of %s", all)
	case len(types) > 1:
		d.add(types[1].key.Line, types[1].path, "a step has one type and this one is already %s; make it two steps", types[0].name)
	}
	if len(types) > 0 {
		t, _ := s.workflowStep(types[0].name)
		st.Kind = t.Kind
		if t.Requires != "" && !s.cfg.HasSection(t.Requires) {
			d.add(types[0].key.Line, types[0].path, "needs a %s section at the top of the file (see docs/cleanup.md)", t.Requires)
		}
		st.With = d.params(types[0], t, s)
	}
	return st
}

func (d *decoder) stepID(p pair, s *stepScope) string {
	id, ok := d.str(p)
	if !ok {
		return ""
	}
	switch line, dup := s.ids[id]; {
	case !stepID.MatchString(id):
		d.problemAt(p, "%s is not a step id: letters, digits and _, not starting with a digit (like inst)", d.show(p, id))
	case slices.Contains(reservedIDs, id):
		d.problemAt(p, "%s is reserved: expressions use %s; pick another id", d.show(p, id), strings.Join(reservedIDs, ", "))
	case dup:
		d.problemAt(p, "duplicate step id %s (first at line %d)", d.show(p, id), line)
	default:
		s.ids[id] = p.line()
	}
	return id
}

// params checks a step's parameters against its type and returns them as
// JSON, strings as written: {{ expressions }} are the engine's to check
// and evaluate.
func (d *decoder) params(tp pair, t *switchboard.StepType, s *stepScope) json.RawMessage {
	with := map[string]any{}
	ps := d.pairs(tp.val, tp.path, tp.line())
	got := map[string]pair{}
	if t.Free {
		for _, q := range ps {
			if !stepID.MatchString(q.name) {
				d.add(q.key.Line, q.path, "a name to set is letters, digits and _, not starting with a digit (like host)")
			}
			if v, ok := d.value(q, 0); ok {
				with[q.name] = v
				if w, ok := d.writtenCopy().value(q, 0); ok {
					with[q.name] = w
				}
			}
		}
		if len(ps) == 0 && d.problems.none(tp.path) {
			d.problemAt(tp, "is empty: set names values for later steps, like set: { host: '{{ steps.inst.public_ip }}' }")
		}
		return marshalWith(with)
	}

	known := names(t.Params, func(p switchboard.Param) string { return p.Name })
	for _, q := range ps {
		if _, ok := t.Param(q.name); ok {
			got[q.name] = q
		} else if sug := suggest(q.name, known); sug != "" {
			d.add(q.key.Line, q.path, "unknown parameter %q; did you mean %q?", q.name, sug)
		} else {
			d.add(q.key.Line, q.path, "unknown parameter %q (%s parameters: %s)", q.name, t.Kind, strings.Join(known, ", "))
		}
	}

	// The cloud the step acts on, its own or the workflow's, decides how
	// literal instance ids are checked.
	cloud := s.cloud
	if q, ok := got["cloud"]; ok {
		name, ok := d.str(q)
		if ok {
			with["cloud"] = name
		}
		if ok && !templated(name) {
			if cl, ok := s.cfg.Cloud(name); ok {
				cloud = &cl
			} else {
				d.problemAt(q, "unknown cloud %s (%s)", d.show(q, name), defined("clouds", cloudNames(s.cfg.Clouds)))
			}
		}
	} else if t.OnCloud {
		s.needsCloud = true
	}
	provider := ""
	if cloud != nil {
		provider = cloud.Provider
	}

	for _, q := range ps {
		prm, ok := t.Param(q.name)
		if !ok {
			continue
		}
		if prm.Name == "cloud" {
			continue // decoded above
		}
		v, items, ok := d.param(q, prm, s)
		if !ok {
			continue
		}
		with[q.name] = v
		if prm.Instance {
			ids, _ := v.([]string)
			if id, ok := v.(string); ok {
				ids = []string{id}
			}
			for i, id := range ids {
				d.checkStepInstance(items[i], id, provider)
			}
		}
	}
	for _, prm := range t.Params {
		if _, ok := with[prm.Name]; prm.Required && !ok {
			hint := prm.Hint
			if hint == "" {
				hint = "a " + t.Kind + " step needs " + prm.Name
			}
			d.required(tp, got, prm.Name, "%s", hint)
		}
	}

	var selectors []string
	for _, name := range t.Targets {
		if _, ok := got[name]; ok {
			selectors = append(selectors, name)
		}
	}
	switch {
	case len(t.Targets) > 0 && len(selectors) == 0 && d.problems.none(tp.path):
		d.problemAt(tp, "needs %s: the instances to act on", orList(t.Targets))
	case len(selectors) > 1:
		d.problemAt(got[selectors[1]], "a step selects instances one way; this one already has %s", selectors[0])
	}
	if q, ok := got["tags"]; ok {
		if tags, _ := with["tags"].(map[string]string); len(tags) == 0 && d.problems.none(q.path) {
			d.problemAt(q, "is empty; a selector names at least one tag, like { role: web }")
		}
	}

	for _, prm := range t.Params {
		q, ok := got[prm.Name]
		str, isStr := with[prm.Name].(string)
		if !ok || !isStr || templated(str) && !prm.Pattern {
			continue
		}
		switch {
		case prm.Channel:
			with[prm.Name] = d.channelTarget(q, str, s.cfg)
		case prm.Pattern:
			d.checkPattern(q, str)
		case prm.URL:
			if msg := checkHTTPURL(str, "https://example.com/hook"); msg != "" {
				d.problemAt(q, "%s", msg)
			} else {
				d.checkAllowed(q, str, s.cfg.HTTP)
			}
		}
	}
	for _, prm := range t.Params {
		if q, ok := got[prm.Name]; ok && prm.URL && s.cfg.HTTP == nil && d.problems.none(q.path) {
			d.problemAt(q, "cannot be called: the file has no http section, and http steps call only the hosts it lists; add one, like http: { allow: [api.example.com] }")
		}
	}
	if t.CheckFunc != nil && d.problems.none(tp.path) {
		for _, pp := range t.CheckFunc(with) {
			if q, ok := got[pp.Param]; ok {
				d.problemAt(q, "%s", pp.Msg)
			} else {
				d.problemAt(tp, "%s: %s", pp.Param, pp.Msg)
			}
		}
	}
	// Checked with the values; kept with the references, which the run
	// resolves when the step runs, so that no plan holds a secret.
	for _, q := range ps {
		if prm, ok := t.Param(q.name); ok && keepsRefs(prm) && !t.Raw {
			if _, ok := with[q.name]; ok {
				if v, _, ok := d.writtenCopy().param(q, prm, s); ok {
					with[q.name] = v
				}
			}
		}
	}
	return marshalWith(with)
}

// keepsRefs reports whether a parameter's plan keeps ${...} references as
// written: text, lists, mappings and free values, but not what config
// turns into something else (a channel target, a cloud, a pattern whose
// groups are outputs, one of some values).
func keepsRefs(prm switchboard.Param) bool {
	switch prm.Type {
	case switchboard.TypeText, switchboard.TypeStrings, switchboard.TypeTags, switchboard.TypeAny:
		return !prm.Channel && !prm.Pattern && prm.Name != "cloud" && len(prm.Values) == 0
	}
	return false
}

// writtenCopy is a copy of the decoder that decodes values as plans keep
// them (see written); its problems were reported by d already.
func (d *decoder) writtenCopy() *decoder {
	w := *d
	w.problems, w.written = nil, true
	return &w
}

// checkAllowed reports a literal URL whose host the http section does not
// allow, so that the refusal comes at load rather than at 3 a.m.
func (d *decoder) checkAllowed(p pair, raw string, h *HTTP) {
	if h == nil {
		return // reported once for the step
	}
	allow, err := switchboard.NewAllowList(h.Allow...)
	if err != nil {
		return // reported at the entry
	}
	u, _ := url.Parse(raw)
	if allow.CheckURL(u, "http.allow") != nil {
		host := "its host"
		if !d.hidden[p.path] {
			host = u.Scheme + "://" + u.Host
		}
		d.problemAt(p, "calls %s, which http.allow (line %d) does not list; add it there, or call another host", host, h.Line)
	}
}

func (d *decoder) checkStepInstance(p pair, id, provider string) {
	if templated(id) {
		return
	}
	if ok, want := d.checkID(id, provider); !ok {
		d.problemAt(p, "%s is not %s, nor a {{ expression }}", d.show(p, id), want)
	}
}

func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// param decodes one step parameter, and for a list of strings the entries
// as written. A typed parameter (bool, number, duration, one of some
// values) may instead be a {{ expression }}, kept as a string.
func (d *decoder) param(p pair, prm switchboard.Param, s *stepScope) (any, []pair, bool) {
	switch prm.Type {
	case switchboard.TypeStrings:
		v := resolve(p.val)
		if v != nil && v.Kind == yaml.ScalarNode && !isNull(v) {
			str, ok := d.str(p)
			if !ok || templated(str) {
				return str, []pair{p}, ok
			}
			return []string{str}, []pair{p}, true
		}
		n := len(d.problems)
		list, items := d.list(p, "a, b")
		if len(list) == 0 && len(d.problems) == n {
			d.problemAt(p, "is empty")
		}
		return list, items, len(list) > 0
	case switchboard.TypeTags:
		m := d.strMap(p)
		if m == nil {
			m = map[string]string{}
		}
		return m, nil, true
	case switchboard.TypeAny:
		v, ok := d.value(p, 0)
		return v, nil, ok
	case switchboard.TypeUsers:
		users, bad := d.users(p, s.cfg)
		if len(users) == 0 && !bad {
			d.problemAt(p, "nobody could decide; list users or group:NAME")
		}
		return users, nil, len(users) > 0
	case switchboard.TypeCodes:
		codes, ok := d.codes(p)
		return codes, nil, ok
	}

	str, ok := d.str(p)
	if !ok || templated(str) {
		return str, []pair{p}, ok
	}
	switch prm.Type {
	case switchboard.TypeBool:
		b, err := strconv.ParseBool(str)
		if err != nil {
			d.problemAt(p, "expected true or false, got %s", d.show(p, str))
			return nil, nil, false
		}
		return b, nil, true
	case switchboard.TypeInt:
		n, err := strconv.Atoi(str)
		if err != nil {
			d.problemAt(p, "expected a whole number, got %s", d.show(p, str))
			return nil, nil, false
		}
		if n < prm.Min {
			d.problemAt(p, "must be at least %d, got %d", prm.Min, n)
			return nil, nil, false
		}
		return n, nil, true
	case switchboard.TypeDuration:
		if v, err := time.ParseDuration(str); err != nil || v < 0 {
			d.problemAt(p, "expected a duration like 60s or 1m30s, got %s", d.show(p, str))
			return nil, nil, false
		}
		return str, nil, true
	}
	if len(prm.Values) > 0 && !slices.Contains(prm.Values, str) {
		if sug := suggest(str, prm.Values); sug != "" {
			d.problemAt(p, "must be one of %s, got %s; did you mean %q?", strings.Join(prm.Values, ", "), d.show(p, str), sug)
		} else {
			d.problemAt(p, "must be one of %s, got %s", strings.Join(prm.Values, ", "), d.show(p, str))
		}
	}
	return str, []pair{p}, true
}

// codes decodes HTTP status codes: one or a list.
func (d *decoder) codes(p pair) ([]int, bool) {
	items := []pair{p}
	if v := resolve(p.val); v != nil && v.Kind == yaml.SequenceNode {
		items = items[:0]
		for i, item := range v.Content {
			items = append(items, pair{name: p.name, key: p.key, val: item, path: itemPath(p.path, i)})
		}
	}
	var out []int
	for _, ip := range items {
		str, ok := d.str(ip)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(str)
		if err != nil || n < 100 || n > 599 {
			d.problemAt(ip, "expected an HTTP status code (100 to 599), got %s", d.show(ip, str))
			continue
		}
		out = append(out, n)
	}
	return out, len(out) > 0
}

// maxValueNodes bounds the nodes free-form values (http bodies, set) may
// hold once aliases are followed, so that an alias bomb cannot blow up
// the load.
const maxValueNodes = 10000

// value decodes a free-form value as it will appear in JSON: mappings,
// lists, numbers, booleans and strings (with ${...} expanded).
func (d *decoder) value(p pair, depth int) (any, bool) {
	if d.values++; d.values > maxValueNodes {
		d.once(p.line(), p.path, "values are too large (more than %d entries, counting aliases)", maxValueNodes)
		return nil, false
	}
	if depth > 32 {
		d.once(p.line(), p.path, "is nested too deeply")
		return nil, false
	}
	v := resolve(p.val)
	switch {
	case isNull(v):
		return nil, true
	case v.Kind == yaml.SequenceNode:
		out := make([]any, 0, len(v.Content))
		for i, item := range v.Content {
			x, ok := d.value(pair{name: p.name, key: p.key, val: item, path: itemPath(p.path, i)}, depth+1)
			if !ok {
				return nil, false
			}
			out = append(out, x)
		}
		return out, true
	case v.Kind == yaml.MappingNode:
		out := map[string]any{}
		for _, kv := range d.pairs(v, p.path, p.line()) {
			x, ok := d.value(kv, depth+1)
			if !ok {
				return nil, false
			}
			out[kv.name] = x
		}
		return out, true
	case v.Kind == yaml.ScalarNode:
		switch v.ShortTag() {
		case "!!int":
			if n, err := strconv.ParseInt(v.Value, 0, 64); err == nil {
				return n, true
			}
		case "!!float":
			if f, err := strconv.ParseFloat(strings.ReplaceAll(v.Value, "_", ""), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return f, true
			}
		case "!!bool":
			return strings.EqualFold(v.Value, "true"), true
		}
		return d.str(p)
	}
	d.problemAt(p, "unexpected value: %s", kindName(v))
	return nil, false
}

// marshalWith encodes a step's parameters. HTML is not escaped: the JSON is
// read by the engine, not a browser, and "<" reads better than "\u003c".
func marshalWith(with map[string]any) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(with); err != nil {
		// Values come from YAML scalars, lists and mappings only.
		panic("config: cannot encode step parameters: " + err.Error())
	}
	return json.RawMessage(bytes.TrimRight(b.Bytes(), "\n"))
}

// redactSteps returns a copy of steps whose http headers read
// "[redacted]": a header (Authorization) is where a step carries a token.
func redactSteps(steps []switchboard.StepSpec) []switchboard.StepSpec {
	if steps == nil {
		return nil
	}
	out := make([]switchboard.StepSpec, len(steps))
	for i, st := range steps {
		out[i] = st
		if st.Kind != "http" {
			continue
		}
		var with map[string]any
		if json.Unmarshal(st.With, &with) != nil {
			continue
		}
		headers, ok := with["headers"].(map[string]any)
		if !ok {
			continue
		}
		for k := range headers {
			headers[k] = redacted
		}
		out[i].With = marshalWith(with)
	}
	return out
}
