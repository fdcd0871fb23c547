package config

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboardhq/switchboard"
)

// decoder walks a yaml.Node tree by hand rather than through Node.Decode so
// that every problem keeps its line and key path, and so that decoding goes
// on after the first problem.
type decoder struct {
	file   string
	getenv func(string) string
	// withoutSecrets lets a ${VAR} or ${file:} that cannot be resolved
	// stand for an empty value (LoadWithoutSecrets).
	withoutSecrets bool
	readFile       func(string) ([]byte, error)
	problems       Problems

	// hidden holds the key paths whose value must not be echoed in a
	// problem: secret keys, and values that came from ${...} (an
	// environment variable or a file may hold a secret even where the key
	// does not call for one).
	hidden map[string]bool
	// merged counts keys copied by "<<" merges, to bound the work a
	// hostile file can ask for.
	merged int
	// values counts the nodes of free-form values (step parameters), for
	// the same reason.
	values int
	// registry holds the step and cloud types the file may use.
	registry *switchboard.Registry
	// written is set while a step's parameters are decoded as its plan
	// keeps them: ${...} references stay as written, and their values go
	// to refs (shared by every copy of the decoder).
	written bool
	refs    map[string]string
}

// maxMerged bounds the keys "<<" merges may copy in one file.
const maxMerged = 10000

// maxSecretFile bounds what ${file:...} reads; secrets are small.
const maxSecretFile = 1 << 20

func (d *decoder) add(line int, key, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// once adds a problem unless the same one was already reported for key.
func (d *decoder) once(line int, key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for _, p := range d.problems {
		if p.Key == key && p.Msg == msg {
			return
		}
	}
	d.add(line, key, "%s", msg)
}

// pair is one key of a mapping: its name, the key node (for the line of the
// key itself) and the value node.
type pair struct {
	name string
	key  *yaml.Node
	val  *yaml.Node
	path string
}

// line is where a problem about this key is reported: the value's line, or
// the key's when the value is empty and has no position of its own.
func (p pair) line() int {
	if p.val != nil && p.val.Line > 0 && !isNull(p.val) {
		return p.val.Line
	}
	return p.key.Line
}

func (d *decoder) problemAt(p pair, format string, args ...any) {
	d.add(p.line(), p.path, format, args...)
}

// resolve follows aliases. The parser only links an alias to an anchor
// already seen, but an anchor can be an ancestor of its alias, so the walk
// stays schema-driven (never recursing on the data's shape alone).
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// kindName names a node's kind in users' words.
func kindName(n *yaml.Node) string {
	n = resolve(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		}
		return "a string"
	}
	return "an unexpected node"
}

func childPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func itemPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// pairs returns the keys of mapping n in file order, with "<<" merges
// applied (explicit keys win over merged ones). A null node is an empty
// mapping; anything else that is not a mapping is a problem.
func (d *decoder) pairs(n *yaml.Node, path string, line int) []pair {
	return d.pairsDepth(n, path, line, 0)
}

func (d *decoder) pairsDepth(n *yaml.Node, path string, line, depth int) []pair {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		if n.Line > 0 {
			line = n.Line
		}
		d.add(line, path, "expected a mapping (key: value), got %s", kindName(n))
		return nil
	}
	var out, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			merged = append(merged, d.merge(v, path, k.Line, depth)...)
			continue
		}
		rk := resolve(k)
		if rk == nil || rk.Kind != yaml.ScalarNode {
			d.add(k.Line, path, "keys must be plain strings, got %s", kindName(k))
			continue
		}
		name := rk.Value
		p := pair{name: name, key: k, val: v, path: childPath(path, name)}
		if first, ok := seen[name]; ok {
			d.add(k.Line, p.path, "key is defined twice (first at line %d)", first.Line)
			continue
		}
		seen[name] = k
		out = append(out, p)
	}
	for _, p := range merged {
		if _, ok := seen[p.name]; !ok {
			seen[p.name] = p.key
			out = append(out, p)
		}
	}
	return out
}

// merge returns the keys a "<<" value brings: one mapping or a list of them.
func (d *decoder) merge(v *yaml.Node, path string, line, depth int) []pair {
	// Each merge costs one unit, so that a list of aliases to mappings
	// that merge each other cannot grow exponentially.
	if d.merged++; d.merged > maxMerged {
		d.once(line, path, "merges (<<) copy more than %d keys", maxMerged)
		return nil
	}
	if depth > 8 {
		d.once(line, path, "merges (<<) are nested too deeply")
		return nil
	}
	var maps []*yaml.Node
	switch rv := resolve(v); {
	case rv != nil && rv.Kind == yaml.MappingNode:
		maps = []*yaml.Node{rv}
	case rv != nil && rv.Kind == yaml.SequenceNode:
		maps = rv.Content
	default:
		d.add(line, path, "a merge (<<) needs a mapping or a list of mappings, got %s", kindName(v))
		return nil
	}
	var out []pair
	seen := map[string]bool{}
	for _, m := range maps {
		for _, p := range d.pairsDepth(m, path, line, depth+1) {
			if d.merged++; d.merged > maxMerged {
				d.once(line, path, "merges (<<) copy more than %d keys", maxMerged)
				return out
			}
			// Earlier mappings in a merge list win, as in YAML 1.1.
			if !seen[p.name] {
				seen[p.name] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// fields returns the keys of an object mapping by name, reporting keys that
// are not in known, with a suggestion when one is close.
func (d *decoder) fields(n *yaml.Node, path string, line int, known ...string) map[string]pair {
	return d.known(d.pairs(n, path, line), known...)
}

// known indexes pairs by name, reporting those not in known.
func (d *decoder) known(pairs []pair, known ...string) map[string]pair {
	out := map[string]pair{}
	for _, p := range pairs {
		if !slices.Contains(known, p.name) {
			d.add(p.key.Line, p.path, "%s", unknownKey(p.name, known))
			continue
		}
		out[p.name] = p
	}
	return out
}

func unknownKey(name string, known []string) string {
	if s := suggest(name, known); s != "" {
		return fmt.Sprintf("unknown key %q; did you mean %q?", name, s)
	}
	return fmt.Sprintf("unknown key %q (known keys: %s)", name, strings.Join(known, ", "))
}

// suggest returns the candidate closest to s when it is close enough to be
// a likely typo, or "".
func suggest(s string, candidates []string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	best, bestDist := "", -1
	for _, c := range candidates {
		dist := levenshtein(norm(s), norm(c))
		if bestDist < 0 || dist < bestDist {
			best, bestDist = c, dist
		}
	}
	// One typo in a short key, two in a longer one; more is another word.
	limit := 2
	if len(best) <= 4 {
		limit = 1
	}
	if best == "" || bestDist > limit || bestDist >= len(best) {
		return ""
	}
	return best
}

func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99 // not a typo of any key; skip the quadratic work
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// str decodes a scalar value as a string, expanding ${...} references. A
// null value is "" and ok is false, as when the key is absent.
func (d *decoder) str(p pair) (string, bool) {
	v := resolve(p.val)
	if isNull(v) {
		return "", false
	}
	if v.Kind != yaml.ScalarNode {
		d.problemAt(p, "expected a string, got %s", kindName(v))
		return "", false
	}
	s, ok := d.expand(v.Value, p)
	return s, ok
}

// list decodes a sequence of strings. A null value is an empty list.
func (d *decoder) list(p pair, example string) ([]string, []pair) {
	v := resolve(p.val)
	if isNull(v) {
		return nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		d.problemAt(p, "expected a list like [%s], got %s", example, kindName(v))
		return nil, nil
	}
	var out []string
	var items []pair
	for i, item := range v.Content {
		ip := pair{name: p.name, key: p.key, val: item, path: itemPath(p.path, i)}
		s, ok := d.str(ip)
		if !ok {
			if isNull(item) {
				d.problemAt(ip, "empty entry")
			}
			continue
		}
		out = append(out, s)
		items = append(items, ip)
	}
	return out, items
}

// strMap decodes a mapping of strings to strings (tags).
func (d *decoder) strMap(p pair) map[string]string {
	ps := d.pairs(p.val, p.path, p.line())
	if len(ps) == 0 {
		return nil
	}
	out := make(map[string]string, len(ps))
	for _, kv := range ps {
		s, _ := d.str(kv)
		out[kv.name] = s
	}
	return out
}

func (d *decoder) boolean(p pair) (bool, bool) {
	s, ok := d.str(p)
	if !ok {
		return false, false
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		d.problemAt(p, "expected true or false, got %s", d.show(p, s))
		return false, false
	}
	return b, true
}

func (d *decoder) duration(p pair) (time.Duration, bool) {
	s, ok := d.str(p)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		d.problemAt(p, "expected a duration like 5s or 1m30s, got %s", d.show(p, s))
		return 0, false
	}
	return v, true
}

// show quotes a value for a problem message, unless the value is secret.
func (d *decoder) show(p pair, s string) string {
	if d.hidden[p.path] {
		return "the value (not shown: it may be secret)"
	}
	return strconv.Quote(s)
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces ${VAR}, ${VAR:-default} and ${file:PATH} in a scalar
// value; "$${" stands for a literal "${". Expansion happens after YAML
// parsing, so a value can never inject YAML structure.
func (d *decoder) expand(s string, p pair) (string, bool) {
	if !strings.Contains(s, "${") {
		return s, true
	}
	d.hidden[p.path] = true
	ok := true
	out, err := switchboard.ExpandReferences(s, func(ref string) (string, error) {
		v, good := d.lookup(ref, p)
		ok = ok && good
		if good && d.written {
			d.refs[ref] = v // for the runs that will resolve it
		}
		return v, nil
	})
	if err != nil {
		d.problemAt(p, "%s", err)
		return "", false
	}
	if d.written {
		// A step's plan keeps the reference as written.
		return s, ok
	}
	return out, ok
}

// lookup resolves one ${...} reference.
func (d *decoder) lookup(ref string, p pair) (string, bool) {
	if path, ok := strings.CutPrefix(ref, "file:"); ok {
		if path == "" {
			d.problemAt(p, "${file:} needs a path, like ${file:/run/secrets/slack}")
			return "", false
		}
		data, err := d.readFile(path)
		if err != nil && d.withoutSecrets {
			return "", true
		}
		if err != nil {
			d.problemAt(p, "cannot read secret file: %v", err)
			return "", false
		}
		return strings.TrimRight(string(data), "\r\n"), true
	}
	name, def, hasDef := strings.Cut(ref, ":-")
	if !envName.MatchString(name) {
		d.problemAt(p, "bad reference ${%s}: use ${VAR}, ${VAR:-default} or ${file:PATH}", truncate(name, 40))
		return "", false
	}
	if v := d.getenv(name); v != "" {
		return v, true
	}
	if hasDef || d.withoutSecrets {
		return def, true
	}
	d.problemAt(p, "environment variable %s is not set (write ${%s:-} to allow it to be empty)", name, name)
	return "", false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// readSecretFile reads a ${file:...} secret: a regular file (so a FIFO or a
// device cannot hang the load) of bounded size.
func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSecretFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSecretFile)
	}
	return data, nil
}

// sortedKeys lists a map's keys for messages like "groups defined: a, b".
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
