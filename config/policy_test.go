package config_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/config"
)

// policyBase is a valid configuration whose /ec2 command ends with a
// policy key; the cases append rules to it. Its line 14 is "    policy:".
const policyBase = `clouds:
  main:
    provider: sim
    instances:
      - { id: i-0123456789abcdef0, name: tools, state: stopped }
groups:
  ops: [U0OPS1, U0OPS2]
  dev: [U0DEV1, U0OPS2]
commands:
  /ec2:
    cloud: main
    allow: { users: [group:ops, U0DEV1] }
    instances: { web: { tags: { role: web } } }
    policy:
`

func TestParse_policy(t *testing.T) {
	t.Parallel()
	yaml := policyBase + `      - if: 'action == "stop" && instance.tags.env == "prod"'
        approval: { approvers: [group:ops, U0LEAD, group:dev], quorum: 2, timeout: 30m, on_timeout: approve, allow_requester: true }
      - if: 'action == "reboot" && user != "U0OPS1"'
        deny: only U0OPS1 reboots from chat
      - { if: 'action == "start"', approval: { approvers: [U0OPS1] } }
`
	cfg, err := config.Parse("c.yaml", []byte(yaml), nil, registry)
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	want := []switchboard.PolicyRule{
		{If: `action == "stop" && instance.tags.env == "prod"`, Line: 15, Approval: &switchboard.ApprovalRule{
			// Groups expanded in order, each user once.
			Approvers: []string{"U0OPS1", "U0OPS2", "U0LEAD", "U0DEV1"}, Quorum: 2,
			Timeout: 30 * time.Minute, OnTimeout: "approve", AllowRequester: true,
		}},
		{If: `action == "reboot" && user != "U0OPS1"`, Deny: "only U0OPS1 reboots from chat", Line: 17},
		{If: `action == "start"`, Line: 19, Approval: &switchboard.ApprovalRule{
			Approvers: []string{"U0OPS1"}, Quorum: 1, OnTimeout: "deny",
		}},
	}
	cmd, ok := cfg.Command("/ec2")
	if !ok {
		t.Fatal("no /ec2")
	}
	if !reflect.DeepEqual(cmd.Policy, want) {
		t.Errorf("policy =\n%s\nwant\n%s", showRules(cmd.Policy), showRules(want))
	}
}

func TestParse_noPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, yaml string }{
		{"absent", strings.TrimSuffix(policyBase, "    policy:\n")},
		{"null", policyBase},
		{"empty list", strings.TrimSuffix(policyBase, "\n") + " []\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Parse("c.yaml", []byte(tc.yaml), nil, registry)
			if err != nil {
				t.Fatalf("Parse:\n%v", err)
			}
			if p := cfg.Commands[0].Policy; len(p) != 0 {
				t.Errorf("policy = %s, want none", showRules(p))
			}
		})
	}
}

// showRules prints rules with their approvals, which %+v would show as
// pointers.
func showRules(rules []switchboard.PolicyRule) string {
	var b strings.Builder
	for _, r := range rules {
		fmt.Fprintf(&b, "  if=%q deny=%q line=%d", r.If, r.Deny, r.Line)
		if r.Approval != nil {
			fmt.Fprintf(&b, " approval=%+v", *r.Approval)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestParse_policyProblems(t *testing.T) {
	t.Parallel()
	const stop = `      - if: 'action == "stop"'` + "\n"
	for _, tc := range []struct {
		name  string
		rules string
		// want holds the start of each problem line, in order; every
		// problem must be listed.
		want []string
	}{
		{"not a list", "      deny: no\n",
			[]string{`c.yaml:15: commands./ec2.policy: expected a list of rules`}},
		{"rule is not a mapping", "      - stop\n",
			[]string{`c.yaml:15: commands./ec2.policy[0]: expected a mapping (key: value), got a string`}},
		{"missing if", "      - deny: no stops\n",
			[]string{`c.yaml:15: commands./ec2.policy[0].if: is required: the condition`}},
		{"empty if", "      - { if: '', deny: no stops }\n",
			[]string{`c.yaml:15: commands./ec2.policy[0].if: is empty`}},
		{"if is not a string", "      - { if: [stop], deny: no stops }\n",
			[]string{`c.yaml:15: commands./ec2.policy[0].if: expected a string, got a list`}},
		{"both deny and approval", stop + "        deny: no stops\n        approval: { approvers: [group:ops] }\n",
			[]string{`c.yaml:15: commands./ec2.policy[0]: has both deny and approval`}},
		{"neither deny nor approval", stop,
			[]string{`c.yaml:15: commands./ec2.policy[0]: needs deny (the reason to refuse`}},
		{"empty deny", stop + "        deny: ''\n",
			[]string{`c.yaml:16: commands./ec2.policy[0].deny: is empty`}},
		{"empty approval", stop + "        approval:\n",
			[]string{`c.yaml:16: commands./ec2.policy[0].approval: is empty: say who must approve`}},
		{"approvers missing", stop + "        approval: { quorum: 1 }\n",
			[]string{`c.yaml:16: commands./ec2.policy[0].approval.approvers: is required: who may approve`}},
		{"approvers empty", stop + "        approval: { approvers: [] }\n",
			[]string{`c.yaml:16: commands./ec2.policy[0].approval.approvers: nobody could approve; list users or group:NAME`}},
		{"unknown group", stop + "        approval: { approvers: [U0OPS1, group:opz] }\n",
			[]string{`c.yaml:16: commands./ec2.policy[0].approval.approvers[1]: unknown group "opz" (groups defined: dev, ops)`}},
		{"user name instead of id", stop + "        approval: { approvers: [\"@bob\"] }\n",
			[]string{`c.yaml:16: commands./ec2.policy[0].approval.approvers[0]: "@bob" is a name; list the user id`}},
		{"quorum zero", stop + "        approval: { approvers: [group:ops], quorum: 0 }\n",
			[]string{`c.yaml:16: commands./ec2.policy[0].approval.quorum: must be at least 1, got 0`}},
		{"quorum above approvers", stop + "        approval: { approvers: [group:ops], quorum: 3 }\n",
			[]string{`c.yaml:16: commands./ec2.policy[0].approval.quorum: is 3 but only 2 approvers are listed`}},
		{"quorum not a number", stop + "        approval: { approvers: [group:ops], quorum: two }\n",
			[]string{`c.yaml:16: commands./ec2.policy[0].approval.quorum: expected a whole number, got "two"`}},
		{"bad timeout", stop + "        approval: { approvers: [group:ops], timeout: 30 }\n",
			[]string{`c.yaml:16: commands./ec2.policy[0].approval.timeout: expected a duration like 5s or 1m30s, got "30"`}},
		{"negative timeout", stop + "        approval: { approvers: [group:ops], timeout: -1m }\n",
			[]string{`c.yaml:16: commands./ec2.policy[0].approval.timeout: expected a duration`}},
		{"bad on_timeout", stop + "        approval: { approvers: [group:ops], on_timeout: aprove }\n",
			[]string{`c.yaml:16: commands./ec2.policy[0].approval.on_timeout: must be one of deny, approve, got "aprove"; did you mean "approve"?`}},
		{"bad allow_requester", stop + "        approval: { approvers: [group:ops], allow_requester: maybe }\n",
			[]string{`c.yaml:16: commands./ec2.policy[0].approval.allow_requester: expected true or false, got "maybe"`}},
		{"unknown rule key", stop + "        deny: no stops\n        when: always\n",
			[]string{`c.yaml:17: commands./ec2.policy[0].when: unknown key "when" (known keys: if, deny, approval)`}},
		{"unknown approval key", stop + "        approval: { approvers: [group:ops], qorum: 1 }\n",
			[]string{`c.yaml:16: commands./ec2.policy[0].approval.qorum: unknown key "qorum"; did you mean "quorum"?`}},
		{"second rule located", stop + "        deny: no stops\n      - if: 'true'\n        approval: { approvers: [group:nope] }\n",
			[]string{`c.yaml:18: commands./ec2.policy[1].approval.approvers[0]: unknown group "nope" (groups defined: dev, ops)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Parse("c.yaml", []byte(policyBase+tc.rules), nil, registry)
			var ps config.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse = %v, %v; want Problems", cfg, err)
			}
			lines := strings.Split(err.Error(), "\n")
			for i := range max(len(lines), len(tc.want)) {
				switch {
				case i >= len(tc.want):
					t.Errorf("unexpected problem %d: %s", i, lines[i])
				case i >= len(lines):
					t.Errorf("missing problem %d: %s...", i, tc.want[i])
				case !strings.HasPrefix(lines[i], tc.want[i]):
					t.Errorf("problem %d:\n got %s\nwant %s...", i, lines[i], tc.want[i])
				}
			}
		})
	}
}
