package config

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/alibaba"
	"github.com/switchboardhq/switchboard/aws"
	"github.com/switchboardhq/switchboard/sim"
	"github.com/switchboardhq/switchboard/steps"
)

// registry holds the built-in step types and clouds, as cmd/switchboard
// registers them.
var registry = func() *switchboard.Registry {
	r := switchboard.NewRegistry(append(steps.Builtin(), steps.Deploys(&switchboard.BranchSources{})...)...)
	r.AddCloud(sim.Type, aws.Type, alibaba.Type)
	return r
}()

// FuzzParse feeds arbitrary files to the decoder: it must never panic, and a
// file it accepts must hold together (every command's cloud exists, every
// command has users and actions).
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	workflows, err := os.ReadFile("testdata/workflows.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(workflows)
	f.Add([]byte("workflows: { w: { trigger: { webhook: h }, channel: C1, steps: [{ id: a, set: { x: &x [*x] } }, { http: { url: 'http://x', body: [1, .nan, 0x1f, true] } }] } }\nhooks: { h: { secret: s } }\n"))
	f.Add([]byte("x-a: &a [1, 2]\nx-b: &b [*a, *a, *a]\nworkflows: { w: { trigger: { command: /w }, allow: { users: [U1] }, steps: [{ set: { v: [*b, *b] } }] } }\n"))
	f.Add(DefaultYAML)
	f.Add([]byte(""))
	f.Add([]byte("listen: ${A:-:80}\nstore: postgres://u:${file:x}@h/db\n"))
	f.Add([]byte("a: &a [*a]\nclouds: &c { x: { <<: *c, provider: sim } }\n"))
	f.Add([]byte("commands: { /x: { allow: { users: [group:g] }, instances: { t: { tags: { a: b } } } } }\ngroups: { g: [U1] }\nclouds: { m: { provider: sim } }\n"))
	f.Add([]byte("commands: { /x: { allow: { users: [U1] }, instances: { t: { tags: { a: b } } }, policy: [{ if: 'action == \"stop\"', approval: { approvers: [group:g, U2], quorum: 2, timeout: 30m, on_timeout: deny, allow_requester: false } }, { if: 'true', deny: no } ] } }\ngroups: { g: [U1] }\nclouds: { m: { provider: sim } }\n"))
	f.Add([]byte("x-r: &r { if: x, deny: y }\ncommands: { /x: { allow: { users: [U1] }, instances: { t: { tags: { a: b } } }, policy: [*r, { <<: *r, approval: { approvers: [group:z], quorum: 0 } }, ~, [] ] } }\nclouds: { m: { provider: sim } }\n"))
	f.Add([]byte("x-a: &a {x: 1}\nx-b: &b { <<: [*a, *a] }\nx-c: &c { <<: [*b, *b, *c] }\nclouds: { m: { <<: *c } }\n"))
	f.Add([]byte("- [\n"))
	f.Add([]byte("x: !!binary aGk=\n---\ny: 1\n"))

	getenv := func(k string) string {
		if len(k)%2 == 0 {
			return "v-" + k
		}
		return ""
	}
	// Never touch the real file system from a fuzzer: a name like
	// /proc/kmsg would block.
	readFile := func(path string) ([]byte, error) {
		if len(path)%2 == 0 {
			return []byte(path + "\n"), nil
		}
		return nil, errors.New("no such file")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parse("f.yaml", data, getenv, options{readFile: readFile, registry: registry})
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error is not a non-empty Problems: %#v", err)
			}
			return
		}
		for _, cmd := range cfg.Commands {
			if _, ok := cfg.Cloud(cmd.Cloud); !ok {
				t.Fatalf("command %s acts on unknown cloud %q", cmd.Name, cmd.Cloud)
			}
			if len(cmd.Access.Users) == 0 || len(cmd.Actions) == 0 || len(cmd.Instances) == 0 {
				t.Fatalf("command %s accepted with nobody, no actions or no targets: %+v", cmd.Name, cmd)
			}
			for _, r := range cmd.Policy {
				if r.If == "" || (r.Deny == "") == (r.Approval == nil) {
					t.Fatalf("command %s accepted policy rule %+v", cmd.Name, r)
				}
				if a := r.Approval; a != nil && (len(a.Approvers) == 0 || a.Quorum < 1 || a.Quorum > len(a.Approvers) || a.Timeout < 0) {
					t.Fatalf("command %s accepted approval %+v", cmd.Name, *a)
				}
			}
			for _, a := range cmd.Actions {
				if !slices.Contains(switchboard.AllActions, a) {
					t.Fatalf("command %s accepted action %q", cmd.Name, a)
				}
			}
		}
		stepTypes := registry.StepKinds()
		checkSteps := func(w switchboard.WorkflowSpec, steps []switchboard.StepSpec) {
			for _, st := range steps {
				var with map[string]any
				if !slices.Contains(stepTypes, st.Kind) || json.Unmarshal(st.With, &with) != nil {
					t.Fatalf("workflow %s accepted step %+v", w.Name, st)
				}
			}
		}
		for _, w := range cfg.Workflows {
			tr := w.Trigger
			n := 0
			for _, set := range []bool{tr.Command != "", tr.Schedule != nil, tr.Mail != nil, tr.Event != nil, tr.Webhook != ""} {
				if set {
					n++
				}
			}
			if n != 1 || len(w.Steps) == 0 {
				t.Fatalf("workflow %s accepted with %d triggers and %d steps", w.Name, n, len(w.Steps))
			}
			if _, ok := cfg.Cloud(w.Cloud); w.Cloud != "" && !ok {
				t.Fatalf("workflow %s acts on unknown cloud %q", w.Name, w.Cloud)
			}
			if tr.Command != "" && len(w.Access.Users) == 0 {
				t.Fatalf("workflow %s started by %s accepted with nobody allowed", w.Name, tr.Command)
			}
			checkSteps(w, w.Steps)
			checkSteps(w, w.OnError)
		}
		_ = cfg.String()
	})
}
