package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/config"
)

// loadWorkflows parses testdata/workflows.yaml with its secret files in a
// temporary directory.
func loadWorkflows(t *testing.T) (*config.Config, string) {
	t.Helper()
	data, err := os.ReadFile("testdata/workflows.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, v := range map[string]string{"imap": "imap-pass-61c2", "hook": "hook-key-93ab"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	text := strings.ReplaceAll(string(data), "/run/secrets/", dir+"/")
	cfg, err := config.Parse("w.yaml", []byte(text), env(map[string]string{"DNS_TOKEN": "dns-tok-77f0"}), registry)
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return cfg, text
}

// lineOf returns the line of the first occurrence of s in text.
func lineOf(t *testing.T, text, s string) int {
	t.Helper()
	i := strings.Index(text, s)
	if i < 0 {
		t.Fatalf("no %q in the file", s)
	}
	return strings.Count(text[:i], "\n") + 1
}

// sameJSON reports whether two JSON documents hold the same value.
func sameJSON(t *testing.T, got json.RawMessage, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("With is not JSON: %s", got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %s", want)
	}
	return reflect.DeepEqual(g, w)
}

type wantStep struct {
	id, kind, cond, with string
	line                 int
}

func checkSteps(t *testing.T, what string, got []switchboard.StepSpec, want []wantStep) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d steps, want %d: %+v", what, len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.ID != w.id || g.Kind != w.kind || g.If != w.cond || g.Line != w.line {
			t.Errorf("%s[%d] = id %q kind %q if %q line %d; want id %q kind %q if %q line %d", what, i, g.ID, g.Kind, g.If, g.Line, w.id, w.kind, w.cond, w.line)
		}
		if !sameJSON(t, g.With, w.with) {
			t.Errorf("%s[%d].With = %s\nwant %s", what, i, g.With, w.with)
		}
	}
}

func TestParse_workflowExample(t *testing.T) {
	t.Parallel()
	cfg, text := loadWorkflows(t)
	line := func(s string) int { return lineOf(t, text, s) }

	wantMailbox := config.Mailbox{
		Name: "aws-notices", Line: line("  aws-notices:"), Addr: "imap.example.com:993", Username: "ops-notices@example.com",
		Password: "imap-pass-61c2", TLS: "tls", Folder: "INBOX", Poll: 30 * time.Second,
	}
	if len(cfg.Mailboxes) != 1 || cfg.Mailboxes[0] != wantMailbox {
		t.Errorf("mailboxes = %#v\nwant [%#v]", cfg.Mailboxes, wantMailbox)
	}
	wantQueue := config.Queue{Name: "ec2-events", Line: line("  ec2-events:"), URL: "https://sqs.us-east-1.amazonaws.com/123456789012/switchboard-events", Region: "us-east-1"}
	if q, ok := cfg.Queue("ec2-events"); !ok || q != wantQueue || len(cfg.Queues) != 1 {
		t.Errorf("queues = %#v\nwant [%#v]", cfg.Queues, wantQueue)
	}
	if h, ok := cfg.Hook("deploy-done"); !ok || h != (config.Hook{Name: "deploy-done", Line: line("  deploy-done:"), Secret: "hook-key-93ab"}) {
		t.Errorf("hooks = %#v", cfg.Hooks)
	}

	var names []string
	for _, w := range cfg.Workflows {
		names = append(names, w.Name)
	}
	if want := []string{"maintenance", "nightly", "cleanup", "deployed", "maint-now"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("workflows = %v, want %v in file order", names, want)
	}

	w, ok := cfg.Workflow("maintenance")
	if !ok {
		t.Fatal(`Workflow("maintenance") not found`)
	}
	wantTrigger := switchboard.TriggerSpec{Mail: &switchboard.MailTrigger{Mailbox: "aws-notices", Subject: `Amazon EC2 Maintenance|\[Retirement Notification\]`}}
	if !reflect.DeepEqual(w.Trigger, wantTrigger) || w.Cloud != "main" || w.Channel != "C0OPS" || w.Line != line("  maintenance:") || !reflect.DeepEqual(w.Access, switchboard.Access{}) {
		t.Errorf("maintenance = trigger %+v cloud %q channel %q line %d access %+v", w.Trigger.Mail, w.Cloud, w.Channel, w.Line, w.Access)
	}
	checkSteps(t, "maintenance.steps", w.Steps, []wantStep{
		{id: "mail", kind: "extract", line: line("- id: mail"), with: `{"from":"{{ event.body }}","pattern":"(?P<instance>i-[0-9a-f]{8,17})"}`},
		{id: "inst", kind: "describe", line: line("- id: inst"), with: `{"instance":"{{ steps.mail.instance }}"}`},
		{kind: "notify", line: line(`- notify: { text: "*{{`), with: `{"text":"*{{ event.subject }}*\n{{ event.body }}\nInstance: {{ steps.inst.name }} ({{ steps.mail.instance }})"}`},
		{id: "ok", kind: "approval", line: line("- id: ok"), with: `{"text":"Restart {{ steps.inst.name }} now?","approvers":["U0OPS1","U0OPS2"],"timeout":"30m","on_timeout":"deny"}`},
		{kind: "notify", cond: "!steps.ok.approved", line: line("- if: '!steps.ok.approved'"), with: `{"text":"Not restarting {{ steps.inst.name }}: {{ steps.ok.decision }}."}`},
		{kind: "fail", cond: "!steps.ok.approved", line: line("- if: '!steps.ok.approved'\n        fail"), with: `{"message":"{{ steps.ok.decision }}","quiet":true}`},
		{kind: "stop", line: line("- stop:"), with: `{"instance":"{{ steps.mail.instance }}","wait":"60s"}`},
		{kind: "start", line: line("- start:"), with: `{"instance":"{{ steps.mail.instance }}","wait":"90s"}`},
		{kind: "notify", line: line("- notify: { text: done }"), with: `{"text":"done"}`},
	})
	checkSteps(t, "maintenance.on_error", w.OnError, []wantStep{
		{kind: "notify", line: line("- notify: { text: \"Maintenance of"), with: `{"text":"Maintenance of {{ steps.mail.instance }} failed: {{ error }}"}`},
	})

	nightly, _ := cfg.Workflow("nightly")
	if want := (switchboard.ScheduleTrigger{Cron: "0 3 * * 1-5", Timezone: "Europe/Paris", Missed: "run_once"}); nightly.Trigger.Schedule == nil || *nightly.Trigger.Schedule != want {
		t.Errorf("nightly trigger = %+v", nightly.Trigger)
	}
	checkSteps(t, "nightly.steps", nightly.Steps, []wantStep{
		{kind: "terminate", line: line("- terminate:"), with: `{"tags":{"env":"dev"},"wait":"0"}`},
	})

	cleanup, _ := cfg.Workflow("cleanup")
	wantEvent := switchboard.EventTrigger{Source: "aws.ec2", DetailType: []string{"EC2 Instance State-change Notification"}, State: []string{"terminated", "stopped"}, Queue: "ec2-events"}
	if cleanup.Trigger.Event == nil || !reflect.DeepEqual(*cleanup.Trigger.Event, wantEvent) {
		t.Errorf("cleanup trigger = %+v", cleanup.Trigger.Event)
	}
	checkSteps(t, "cleanup.steps", cleanup.Steps, []wantStep{{kind: "http", line: line("- http:"), with: `{
		"method":"POST","url":"https://dns.example.com/records","headers":{"Authorization":"Bearer ${DNS_TOKEN}"},
		"body":{"ids":"{{ event.instances }}","force":true,"ttl":60,"note":"a <b> & c"},"expect":[200,204],"timeout":"10s"}`}})
	if with := string(cleanup.Steps[0].With); !strings.Contains(with, "a <b> & c") {
		t.Errorf("With escapes HTML: %s", with)
	}

	deployed, _ := cfg.Workflow("deployed")
	if deployed.Trigger != (switchboard.TriggerSpec{Webhook: "deploy-done"}) {
		t.Errorf("deployed trigger = %+v", deployed.Trigger)
	}
	checkSteps(t, "deployed.steps", deployed.Steps, []wantStep{
		{id: "vars", kind: "set", line: line("- id: vars"), with: `{"branch":"{{ event.data.branch }}","replicas":2}`},
		{kind: "notify", line: line("- notify: { text: 'Deployed"), with: `{"text":"Deployed {{ steps.vars.branch }}","thread":true}`},
	})

	now, _ := cfg.Workflow("maint-now")
	if now.Trigger != (switchboard.TriggerSpec{Command: "/maint"}) || now.Cloud != "main" || now.Channel != "" ||
		!reflect.DeepEqual(now.Access, switchboard.Access{Users: []string{"U0OPS1", "U0OPS2", "U0BOSS"}, Channels: []string{"C0OPS"}}) {
		t.Errorf("maint-now = trigger %+v cloud %q channel %q access %+v", now.Trigger, now.Cloud, now.Channel, now.Access)
	}
	checkSteps(t, "maint-now.steps", now.Steps, []wantStep{
		{id: "inst", kind: "describe", line: line("- id: inst\n        describe: { instance: '{{ event.args"), with: `{"instance":"{{ event.args[0] }}"}`},
		{kind: "run", line: line("- run:"), with: `{"image":"ami-0123456789abcdef0","count":2,"security_groups":["sg-1"],"tags":{"branch":"x"},"wait":"2m"}`},
		{kind: "wait", line: line("- wait:"), with: `{"instance":"i-0123456789abcdef0","state":"running","timeout":"5m"}`},
		{kind: "associate", line: line("- associate:"), with: `{"instance":"{{ steps.inst.id }}","address":"107.20.248.29"}`},
		{kind: "reboot", line: line("- reboot:"), with: `{"instances":["i-0123456789abcdef0"],"cloud":"main"}`},
		{kind: "stop", line: line("- stop: { instances"), with: `{"instances":"{{ event.instances }}"}`},
	})
}

func TestParse_workflowProblems(t *testing.T) {
	t.Parallel()
	// A valid configuration the cases start from; line numbers below
	// count from its first line.
	const base = `clouds:
  main: { provider: sim, instances: [{ id: i-0123456789abcdef0 }] }
groups:
  ops: [U0OPS1, U0OPS2]
commands:
  /ec2: { allow: { users: [group:ops] }, instances: { tools: { id: i-0123456789abcdef0 } } }
mailboxes:
  notices: { addr: "imap.example.com:993", username: ops, password: pw }
queues:
  events: { url: "https://sqs.us-east-1.amazonaws.com/123456789012/events" }
hooks:
  deploy: { secret: s3cret }
workflows:
  maint:
    trigger: { mail: { mailbox: notices, subject: Maintenance } }
    channel: C0OPS
    steps:
      - id: mail
        extract: { from: '{{ event.body }}', pattern: '(?P<instance>i-[0-9a-f]{8,17})' }
      - notify: { text: 'Instance {{ steps.mail.instance }}' }
      - stop: { instance: '{{ steps.mail.instance }}', wait: 60s }
`
	if _, err := config.Parse("c.yaml", []byte(base), nil, registry); err != nil {
		t.Fatalf("the base is not valid:\n%v", err)
	}
	edit := func(pairs ...string) string {
		s := base
		for i := 0; i+1 < len(pairs); i += 2 {
			if !strings.Contains(s, pairs[i]) {
				t.Fatalf("base has no %q", pairs[i])
			}
			s = strings.Replace(s, pairs[i], pairs[i+1], 1)
		}
		return s
	}
	const (
		trigger = "trigger: { mail: { mailbox: notices, subject: Maintenance } }"
		notify  = "- notify: { text: 'Instance {{ steps.mail.instance }}' }"
		stop    = "- stop: { instance: '{{ steps.mail.instance }}', wait: 60s }"
		types   = "notify, approval, extract, set, describe, recall, start, stop, reboot, terminate, run, wait, associate, http, fail, sweep_departed, chef_delete, consul_deregister, route53_cleanup"
	)
	steps := base[strings.Index(base, "    steps:\n"):]

	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"description without a command", edit("    channel: C0OPS\n", "    channel: C0OPS\n    description: Restart what AWS retires\n"),
			[]string{`c.yaml:17: workflows.maint.description: applies only to a command trigger: Slack shows it beside the command`}},
		{"description too long", edit(trigger, "trigger: { command: /maint }\n    allow: { users: [group:ops] }\n    description: "+strings.Repeat("x", 101), "    channel: C0OPS\n", ""),
			[]string{`c.yaml:17: workflows.maint.description: is 101 characters; keep it to 100, Slack shows it on one line beside the command`}},
		{"unknown step type with suggestion", edit("- stop:", "- restart:"),
			[]string{`c.yaml:21: workflows.maint.steps[2].restart: unknown step type "restart"; step types: ` + types + `; did you mean "start"?`}},
		{"unknown step type", edit("- stop:", "- shutdown:"),
			[]string{`c.yaml:21: workflows.maint.steps[2].shutdown: unknown step type "shutdown"; step types: ` + types}},
		{"no step type", edit(notify, "- id: x"),
			[]string{`c.yaml:20: workflows.maint.steps[1]: needs a step type: one of ` + types}},
		{"two types in one step", edit(notify, notify+"\n        fail: { message: x }"),
			[]string{`c.yaml:21: workflows.maint.steps[1].fail: a step has one type and this one is already notify; make it two steps`}},
		{"step is not a mapping", edit(notify, "- notify"),
			[]string{`c.yaml:20: workflows.maint.steps[1]: expected a step: a mapping with one step type, like - notify: { text: hello }; got a string`}},
		{"duplicate step id", edit(notify, "- { id: mail, notify: { text: hi } }"),
			[]string{`c.yaml:20: workflows.maint.steps[1].id: duplicate step id "mail" (first at line 18)`}},
		{"duplicate step id in on_error", base + "    on_error:\n      - { id: mail, notify: { text: hi } }\n",
			[]string{`c.yaml:23: workflows.maint.on_error[0].id: duplicate step id "mail" (first at line 18)`}},
		{"reserved step id", edit(notify, "- { id: event, notify: { text: hi } }"),
			[]string{`c.yaml:20: workflows.maint.steps[1].id: "event" is reserved: expressions use event, run, steps, error; pick another id`}},
		{"bad step id", edit(notify, "- { id: 2nd-step, notify: { text: hi } }"),
			[]string{`c.yaml:20: workflows.maint.steps[1].id: "2nd-step" is not a step id: letters, digits and _`}},
		{"empty if", edit(notify, "- { if: '', notify: { text: hi } }"),
			[]string{`c.yaml:20: workflows.maint.steps[1].if: is empty; remove it to always run the step`}},
		{"missing required parameter", edit(notify, "- notify: { channel: C0OPS }"),
			[]string{`c.yaml:20: workflows.maint.steps[1].notify.text: is required: what to post`}},
		{"approval without approvers", edit(notify, "- approval: { text: 'ok?' }"),
			[]string{`c.yaml:20: workflows.maint.steps[1].approval.approvers: is required: who may decide, like approvers: [group:ops]`}},
		{"unknown parameter with suggestion", edit(notify, "- notify: { txt: hi }"),
			[]string{`c.yaml:20: workflows.maint.steps[1].notify.txt: unknown parameter "txt"; did you mean "text"?`, `c.yaml:20: workflows.maint.steps[1].notify.text: is required`}},
		{"unknown parameter", edit(stop, "- stop: { instance: i-0123456789abcdef0, force: true }"),
			[]string{`c.yaml:21: workflows.maint.steps[2].stop.force: unknown parameter "force" (stop parameters: instance, instances, tags, cloud, wait)`}},
		{"bad regexp", edit("(?P<instance>i-[0-9a-f]{8,17})", "(?P<instance>i-[0-9a-f"),
			[]string{`c.yaml:19: workflows.maint.steps[0].extract.pattern: is not a valid regular expression: missing closing ] in "[0-9a-f"`}},
		{"bad subject regexp", edit("subject: Maintenance", "subject: 'Maint(enance'"),
			[]string{`c.yaml:15: workflows.maint.trigger.mail.subject: is not a valid regular expression: missing closing ) in "Maint(enance"`}},
		{"bad duration", edit("wait: 60s", "wait: 60"),
			[]string{`c.yaml:21: workflows.maint.steps[2].stop.wait: expected a duration like 60s or 1m30s, got "60"`}},
		{"stop without a target", edit(stop, "- stop: { wait: 60s }"),
			[]string{`c.yaml:21: workflows.maint.steps[2].stop: needs instance, instances or tags: the instances to act on`}},
		{"stop with two targets", edit(stop, "- stop: { instance: i-0123456789abcdef0, tags: { env: dev } }"),
			[]string{`c.yaml:21: workflows.maint.steps[2].stop.tags: a step selects instances one way; this one already has instance`}},
		{"empty tag selector", edit(stop, "- terminate: { tags: {} }"),
			[]string{`c.yaml:21: workflows.maint.steps[2].terminate.tags: is empty; a selector names at least one tag`}},
		{"literal instance id", edit(stop, "- stop: { instances: [i-0123456789abcdef0, web-1] }"),
			[]string{`c.yaml:21: workflows.maint.steps[2].stop.instances[1]: "web-1" is not an instance id`}},
		{"wait state", edit(stop, "- wait: { instance: i-0123456789abcdef0, state: runing }"),
			[]string{`c.yaml:21: workflows.maint.steps[2].wait.state: must be one of pending, running, stopping, stopped, terminated, got "runing"; did you mean "running"?`}},
		{"approval values", edit(notify, "- approval: { text: 'ok?', approvers: [group:opz, U0BOSS], quorum: 0, on_timeout: reject }"),
			[]string{`c.yaml:20: workflows.maint.steps[1].approval.approvers[0]: unknown group "opz" (groups defined: ops)`,
				`c.yaml:20: workflows.maint.steps[1].approval.quorum: must be at least 1, got 0`,
				`c.yaml:20: workflows.maint.steps[1].approval.on_timeout: must be one of deny, approve, got "reject"`}},
		{"quorum above the approvers", edit(notify, "- approval: { text: 'ok?', approvers: [group:ops], quorum: 3 }"),
			[]string{`c.yaml:20: workflows.maint.steps[1].approval.quorum: is 3 but only 2 approvers are listed`}},
		{"sweep guard without approvers", edit(notify, "- sweep_departed: { workflow: maint, approve_over: 5 }"),
			[]string{`c.yaml:20: workflows.maint.steps[1].sweep_departed: approvers: a sweep with approve_over needs approvers, who decide when it would remove more, like approvers: [group:ops]`}},
		{"sweep approvers without a guard", edit(notify, "- sweep_departed: { workflow: maint, approvers: [group:ops] }"),
			[]string{`c.yaml:20: workflows.maint.steps[1].sweep_departed: approve_over: approvers are asked only past approve_over, the number of items a sweep may remove without asking, like approve_over: 20`}},
		{"http", edit(notify, "- http: { url: 'ftp://x', method: FETCH, expect: [200, 700] }"),
			[]string{`c.yaml:20: workflows.maint.steps[1].http.method: must be one of GET, HEAD, POST, PUT, PATCH, DELETE, got "FETCH"`,
				`c.yaml:20: workflows.maint.steps[1].http.expect[1]: expected an HTTP status code (100 to 599), got "700"`,
				`c.yaml:20: workflows.maint.steps[1].http.url: must be an http:// or https:// URL`}},
		{"empty set", edit(notify, "- set: {}"),
			[]string{`c.yaml:20: workflows.maint.steps[1].set: is empty`}},
		{"bad cron", edit(trigger, "trigger: { schedule: { cron: '0 3 * *' } }"),
			[]string{`c.yaml:15: workflows.maint.trigger.schedule.cron: bad cron expression "0 3 * *": expected exactly 5 fields, found 4`}},
		{"bad cron field", edit(trigger, "trigger: { schedule: { cron: '0 25 * * *' } }"),
			[]string{`c.yaml:15: workflows.maint.trigger.schedule.cron: bad cron expression "0 25 * * *": `}},
		{"six-field cron", edit(trigger, "trigger: { schedule: { cron: '0 0 3 * * *' } }"),
			[]string{`c.yaml:15: workflows.maint.trigger.schedule.cron: bad cron expression "0 0 3 * * *": expected exactly 5 fields, found 6`}},
		{"bad timezone", edit(trigger, "trigger: { schedule: { cron: '0 3 * * *', timezone: Mars/Olympus, missed: all } }"),
			[]string{`c.yaml:15: workflows.maint.trigger.schedule.timezone: unknown time zone "Mars/Olympus"; use an IANA name like Europe/Paris or UTC`,
				`c.yaml:15: workflows.maint.trigger.schedule.missed: must be one of skip, run_once, got "all"`}},
		{"schedule without cron", edit(trigger, "trigger: { schedule: { timezone: UTC } }"),
			[]string{`c.yaml:15: workflows.maint.trigger.schedule.cron: is required`}},
		{"unknown mailbox", edit("mailbox: notices", "mailbox: notice"),
			[]string{`c.yaml:15: workflows.maint.trigger.mail.mailbox: unknown mailbox "notice" (mailboxes defined: notices)`}},
		{"unknown queue", edit(trigger, "trigger: { event: { source: aws.ec2, state: terminatd, queue: evts } }"),
			[]string{`c.yaml:15: workflows.maint.trigger.event.state: unknown state "terminatd"; did you mean "terminated"?`,
				`c.yaml:15: workflows.maint.trigger.event.queue: unknown queue "evts" (queues defined: events)`}},
		{"event matching everything", edit(trigger, "trigger: { event: {} }"),
			[]string{`c.yaml:15: workflows.maint.trigger.event: would match every cloud event`}},
		{"unknown hook", edit(trigger, "trigger: { webhook: deploi }"),
			[]string{`c.yaml:15: workflows.maint.trigger.webhook: unknown hook "deploi" (hooks defined: deploy)`}},
		{"command clashes with commands", edit(trigger, "trigger: { command: /ec2 }", "    channel: C0OPS\n", "    allow: { users: [group:ops] }\n"),
			[]string{`c.yaml:15: workflows.maint.trigger.command: "/ec2" is also under commands; a slash command starts one thing`}},
		{"command clashes with a workflow", edit(trigger, "trigger: { command: /maint }", "    channel: C0OPS\n", "    allow: { users: [group:ops] }\n") +
			"  again:\n    trigger: { command: /maint }\n    allow: { users: [U1] }\n    steps: [{ notify: { text: hi } }]\n",
			[]string{`c.yaml:23: workflows.again.trigger.command: "/maint" already starts workflows.maint (line 15)`}},
		{"command trigger needs allow", edit(trigger, "trigger: { command: /maint }", "    channel: C0OPS\n", ""),
			[]string{`c.yaml:14: workflows.maint.allow.users: nobody could use this command; list users or group:NAME`}},
		{"channel with a command trigger", edit(trigger, "trigger: { command: /maint }\n    allow: { users: [U1] }"),
			[]string{`c.yaml:17: workflows.maint.channel: applies only to workflows no command starts`}},
		{"allow with a mail trigger", edit("    channel: C0OPS\n", "    channel: C0OPS\n    allow: { users: [U1] }\n"),
			[]string{`c.yaml:17: workflows.maint.allow: applies only to a command trigger`}},
		{"missing channel for a mail trigger", edit("    channel: C0OPS\n", ""),
			[]string{`c.yaml:14: workflows.maint.channel: is required: the channel id where a run started by mail talks, like C0OPS`}},
		{"channel name", edit("channel: C0OPS", "channel: '#ops'"),
			[]string{`c.yaml:16: workflows.maint.channel: "#ops" is a channel name; list the channel id`}},
		{"trigger with two kinds", edit(trigger, "trigger: { mail: { mailbox: notices }, webhook: deploy }"),
			[]string{`c.yaml:15: workflows.maint.trigger: has both mail and webhook; a workflow has one trigger`}},
		{"trigger with no kind", edit(trigger, "trigger: { mails: { mailbox: notices } }"),
			[]string{`c.yaml:15: workflows.maint.trigger.mails: unknown key "mails"; did you mean "mail"?`,
				`c.yaml:15: workflows.maint.trigger: needs one of command, schedule, mail, event, webhook`}},
		{"no trigger", edit("    "+trigger+"\n", ""),
			[]string{`c.yaml:14: workflows.maint.trigger: is required: what starts this workflow, one of command, schedule, mail, event, webhook`}},
		{"empty steps", strings.Replace(base, steps, "    steps: []\n", 1),
			[]string{`c.yaml:17: workflows.maint.steps: is empty: a workflow has at least one step`}},
		{"no steps", strings.Replace(base, steps, "", 1),
			[]string{`c.yaml:14: workflows.maint.steps: is required`}},
		{"steps not a list", strings.Replace(base, steps, "    steps: { notify: { text: hi } }\n", 1),
			[]string{`c.yaml:17: workflows.maint.steps: expected a list of steps like - notify: { text: hello }, got a mapping`}},
		{"unknown workflow key", edit("    channel: C0OPS\n", "    channel: C0OPS\n    stpes: []\n"),
			[]string{`c.yaml:17: workflows.maint.stpes: unknown key "stpes"; did you mean "steps"?`}},
		{"unknown cloud", edit("    channel: C0OPS\n", "    channel: C0OPS\n    cloud: mian\n", stop, "- stop: { instance: i-0123456789abcdef0, cloud: prod }"),
			[]string{`c.yaml:17: workflows.maint.cloud: unknown cloud "mian" (clouds defined: main)`,
				`c.yaml:22: workflows.maint.steps[2].stop.cloud: unknown cloud "prod" (clouds defined: main)`}},
		{"cloud needed with two clouds", edit("groups:", "  aws: { provider: aws }\ngroups:", "/ec2: { allow", "/ec2: { cloud: main, allow"),
			[]string{`c.yaml:15: workflows.maint.cloud: is required: which cloud do its steps act on? (clouds defined: main, aws)`}},
		{"bad workflow name", edit("  maint:\n", "  maint now:\n"),
			[]string{`c.yaml:14: workflows.maint now: a workflow name is letters, digits, - and _`}},
		{"bad mailbox", edit(`notices: { addr: "imap.example.com:993", username: ops, password: pw }`, "notices: { addr: imap.example.com, tls: ssl, poll: 0s }"),
			[]string{`c.yaml:8: mailboxes.notices.addr: must be host:port, like imap.example.com:993, got "imap.example.com"`,
				`c.yaml:8: mailboxes.notices.username: is required`,
				`c.yaml:8: mailboxes.notices.password: is required`,
				`c.yaml:8: mailboxes.notices.tls: must be one of tls, starttls, plain, got "ssl"`,
				`c.yaml:8: mailboxes.notices.poll: must be at least 1s, got "0s"`}},
		{"bad queue", edit(`url: "https://sqs.us-east-1.amazonaws.com/123456789012/events"`, `url: "sqs://x", access_key_id: AKIA`),
			[]string{`c.yaml:10: queues.events.url: must be an http:// or https:// URL`, `c.yaml:10: queues.events.access_key_secret: is required with access_key_id`}},
		{"queue needs a region", edit(`url: "https://sqs.us-east-1.amazonaws.com/123456789012/events"`, `url: "http://127.0.0.1:9324/000000000000/events"`),
			[]string{`c.yaml:10: queues.events.region: is required: the url is not an AWS queue URL`}},
		{"hook without a secret", edit("deploy: { secret: s3cret }", "deploy: {}"),
			[]string{`c.yaml:12: hooks.deploy.secret: is required`}},
		{"several problems at once", edit("- stop:", "- restart:", "mailbox: notices", "mailbox: notice", "    channel: C0OPS\n", ""),
			[]string{
				`c.yaml:14: workflows.maint.channel: is required`,
				`c.yaml:15: workflows.maint.trigger.mail.mailbox: unknown mailbox "notice"`,
				`c.yaml:20: workflows.maint.steps[2].restart: unknown step type "restart"`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Parse("c.yaml", []byte(tc.yaml), nil, registry)
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

// Secrets of the new sections, and http headers (where steps carry
// tokens), never show when the configuration is printed.
func TestSecrets_workflowsNotPrinted(t *testing.T) {
	t.Parallel()
	cfg, _ := loadWorkflows(t)
	if cfg.Mailboxes[0].Password.Value() != "imap-pass-61c2" {
		t.Fatalf("the mailbox password was not read")
	}
	yaml := "queues:\n  q: { url: 'https://sqs.eu-west-1.amazonaws.com/1/q', access_key_id: AKIA, access_key_secret: '${QKEY}' }\n"
	qcfg, err := config.Parse("q.yaml", []byte(yaml), env(map[string]string{"QKEY": "qkey-4411"}), registry)
	if err != nil {
		t.Fatal(err)
	}
	if q := qcfg.Queues[0]; q.AccessKeySecret.Value() != "qkey-4411" || q.Region != "eu-west-1" {
		t.Fatalf("queue = %+v", q)
	}

	var text bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("loaded", "config", cfg, "q", qcfg, "mailbox", cfg.Mailboxes[0], "hook", cfg.Hooks[0])
	js, _ := json.Marshal(cfg)
	qjs, _ := json.Marshal(qcfg)
	redacted, _ := json.Marshal(cfg.Redacted().Workflows)
	out := fmt.Sprintf("%v %+v %#v %v", cfg, cfg, qcfg, cfg.Mailboxes) + text.String() + string(js) + string(qjs) + string(redacted)
	for _, secret := range []string{"imap-pass-61c2", "hook-key-93ab", "dns-tok-77f0", "qkey-4411"} {
		if strings.Contains(out, secret) {
			t.Errorf("the secret %s is printed:\n%s", secret, out)
		}
	}
	// The plan keeps the reference; the run resolves it when the step runs.
	w, _ := cfg.Workflow("cleanup")
	if with := string(w.Steps[0].With); !strings.Contains(with, "Bearer ${DNS_TOKEN}") || strings.Contains(with, "dns-tok-77f0") {
		t.Errorf("the plan does not keep the reference: %s", w.Steps[0].With)
	}
	if got, err := cfg.Secrets().Resolve("Bearer ${DNS_TOKEN}"); err != nil || got != "Bearer dns-tok-77f0" {
		t.Errorf("Resolve = %q, %v", got, err)
	}
	if got := cfg.Secrets().Redact("got dns-tok-77f0 and imap-pass-61c2"); got != "got [redacted] and [redacted]" {
		t.Errorf("Redact = %q", got)
	}
	if w := cfg.Redacted().Workflows[2]; !strings.Contains(string(w.Steps[0].With), `"Authorization":"[redacted]"`) {
		t.Errorf("redacted http step = %s", w.Steps[0].With)
	}
}

// A value from a secret file is not echoed by a problem in the new
// sections either.
func TestSecrets_workflowProblems(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(file, []byte("zz-secret-0f1e"), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := `"${file:` + file + `}"`
	yaml := `
mailboxes:
  m: { addr: ` + ref + `, username: u, password: p, tls: ` + ref + ` }
workflows:
  w:
    trigger: { schedule: { cron: ` + ref + `, timezone: ` + ref + ` } }
    channel: ` + ref + `
    steps:
      - http: { url: ` + ref + `, method: ` + ref + ` }
      - wait: { instance: ` + ref + `, state: running }
      - extract: { from: x, pattern: "(${file:` + file + `}" }
`
	_, err := config.Parse("c.yaml", []byte(yaml), nil, registry)
	var ps config.Problems
	if !errors.As(err, &ps) || len(ps) < 8 {
		t.Fatalf("want a problem for each bad value, got:\n%v", err)
	}
	if strings.Contains(err.Error(), "zz-secret-0f1e") {
		t.Errorf("a problem shows the secret:\n%v", err)
	}
}

// A channel target may be a Slack incoming webhook: by name, or by URL,
// which the config keeps among its secrets so runs record only its name.
func TestWebhookChannelTargets(t *testing.T) {
	t.Parallel()
	const hookURL = "https://hooks.slack.com/services/T0/B0/sekrit77"
	yaml := `clouds: { main: { provider: sim } }
slack:
  webhooks: { deploys: "${HOOK}" }
workflows:
  nightly:
    trigger: { schedule: { cron: "0 17 * * *" } }
    channel: webhook:deploys
    steps:
      - notify: { text: bye, channel: "` + hookURL + `" }
`
	cfg, err := config.Parse("c.yaml", []byte(yaml), env(map[string]string{"HOOK": hookURL}), registry)
	if err != nil {
		t.Fatal(err)
	}
	wf := cfg.Workflows[0]
	if wf.Channel != "webhook:deploys" {
		t.Errorf("channel = %q", wf.Channel)
	}
	var with struct{ Channel string }
	_ = json.Unmarshal(wf.Steps[0].With, &with)
	name, ok := strings.CutPrefix(with.Channel, "webhook:")
	if !ok || cfg.Slack.Webhooks[name].Value() != hookURL || cfg.Slack.Webhooks["deploys"].Value() != hookURL {
		t.Errorf("notify channel = %q, webhooks = %v", with.Channel, cfg.Slack.Webhooks)
	}
	if b, _ := json.Marshal(cfg); strings.Contains(string(b), "sekrit77") {
		t.Errorf("the webhook URL shows in the config's JSON: %s", b)
	}
	if cfg.Slack.Enabled() {
		t.Errorf("webhooks alone turned the Slack app on")
	}

	bad := strings.Replace(yaml, "channel: webhook:deploys", "channel: webhook:nightly", 1)
	bad = strings.Replace(bad, hookURL, "http://hooks.example.com/x", 1)
	_, err = config.Parse("c.yaml", []byte(bad), env(map[string]string{"HOOK": hookURL}), registry)
	for _, want := range []string{`c.yaml:7: workflows.nightly.channel: unknown webhook "nightly"`, `c.yaml:9: workflows.nightly.steps[0].notify.channel: must be an https:// URL`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("problems:\n%v\nwant %s", err, want)
		}
	}
}

// A cleanup step needs its system's section; the section's secrets never
// show.
func TestIntegrationSections(t *testing.T) {
	t.Parallel()
	const base = `clouds: { main: { provider: sim } }
workflows:
  gone:
    trigger: { webhook: gone }
    channel: C0OPS
    steps:
      - chef_delete: { node: web-7 }
      - consul_deregister: { node: web-7, dry_run: true }
hooks: { gone: { secret: s } }
`
	_, err := config.Parse("c.yaml", []byte(base), nil, registry)
	for _, want := range []string{"c.yaml:7: workflows.gone.steps[0].chef_delete: needs a chef section", "c.yaml:8: workflows.gone.steps[1].consul_deregister: needs a consul section"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("problems:\n%v\nwant %s", err, want)
		}
	}
	full := base + `chef: { server_url: "https://chef.example.com/organizations/ops/", client_name: switchboard, key: "${CHEF_KEY}" }
consul: { address: "127.0.0.1:8500", token: "${CONSUL_TOKEN}", lock_prefixes: [locks/] }
`
	cfg, err := config.Parse("c.yaml", []byte(full), env(map[string]string{"CHEF_KEY": "pem-7c1d", "CONSUL_TOKEN": "tok-93aa"}), registry)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Chef.Key.Value() != "pem-7c1d" || cfg.Consul.Token.Value() != "tok-93aa" || cfg.Consul.LockPrefixes[0] != "locks/" {
		t.Errorf("chef %+v, consul %+v", cfg.Chef, cfg.Consul)
	}
	if b, _ := json.Marshal(cfg); strings.Contains(string(b), "pem-7c1d") || strings.Contains(string(b), "tok-93aa") {
		t.Errorf("a secret shows in the config's JSON: %s", b)
	}
	_, err = config.Parse("c.yaml", []byte(base+"chef: { client_name: x }\n"), nil, registry)
	if err == nil || !strings.Contains(err.Error(), "chef.server_url: is required") || !strings.Contains(err.Error(), "chef.key: is required") {
		t.Errorf("problems:\n%v", err)
	}
}

// retry_for bounds how long a workflow step whose system does not answer is
// retried; 30 minutes unless the file says.
func TestRetryFor(t *testing.T) {
	t.Parallel()
	const base = "clouds: { main: { provider: sim } }\n"
	cfg, err := config.Parse("c.yaml", []byte(base), nil, registry)
	if err != nil || cfg.RetryFor != 30*time.Minute {
		t.Fatalf("default retry_for = %v, %v", cfg.RetryFor, err)
	}
	if cfg, err = config.Parse("c.yaml", []byte(base+"retry_for: 2h\n"), nil, registry); err != nil || cfg.RetryFor != 2*time.Hour {
		t.Errorf("retry_for: 2h = %v, %v", cfg.RetryFor, err)
	}
	if _, err = config.Parse("c.yaml", []byte(base+"retry_for: 0s\n"), nil, registry); err == nil || !strings.Contains(err.Error(), "c.yaml:2: retry_for: must be more than zero") {
		t.Errorf("retry_for: 0s: %v", err)
	}
}

// Where Switchboard may send requests is checked at load: the entries of
// slack.response_url_hosts and http.allow, an http step without an http
// section, and a literal URL whose host the section does not list.
func TestOutboundProblems(t *testing.T) {
	t.Parallel()
	base := `slack:
  signing_secret: s
  response_url_hosts: [hooks.slack.com, "ftp://x", "a/b"]
http:
  allow: [api.example.com, "http://10.0.0.5:8080", "999.1.1.1:99999"]
clouds: { main: { provider: sim } }
workflows:
  w:
    trigger: { schedule: { cron: "0 3 * * *" } }
    channel: C0OPS
    steps:
      - http: { url: "https://api.example.com/ok" }
      - http: { url: "http://10.0.0.5:8080/ok" }
      - http: { url: "https://evil.example.com/x", timeout: 10m }
      - http: { url: "http://10.0.0.5:9090/x" }
      - http: { url: "{{ event.text }}" }
`
	_, err := config.Parse("c.yaml", []byte(base), nil, registry)
	want := []string{
		`c.yaml:3: slack.response_url_hosts[1]: "ftp://x" has scheme "ftp"; only http:// and https:// can be allowed`,
		`c.yaml:3: slack.response_url_hosts[2]: "a/b" is not a host, a scheme://host:port or an address range`,
		`c.yaml:5: http.allow[2]: "999.1.1.1:99999" has port "99999"`,
		`c.yaml:14: workflows.w.steps[2].http.timeout: is at most 2m`,
	}
	checkProblems(t, err, want)

	fixed := strings.NewReplacer(`, "ftp://x", "a/b"`, "", `, "999.1.1.1:99999"`, "").Replace(base)
	_, err = config.Parse("c.yaml", []byte(fixed), nil, registry)
	checkProblems(t, err, []string{
		`c.yaml:14: workflows.w.steps[2].http.url: calls https://evil.example.com, which http.allow (line 4) does not list`,
		`c.yaml:14: workflows.w.steps[2].http.timeout: is at most 2m`,
		`c.yaml:15: workflows.w.steps[3].http.url: calls http://10.0.0.5:9090, which http.allow (line 4) does not list`,
	})

	noSection := strings.Replace(fixed, "http:\n  allow: [api.example.com, \"http://10.0.0.5:8080\"]\n", "", 1)
	_, err = config.Parse("c.yaml", []byte(noSection), nil, registry)
	if err == nil || !strings.Contains(err.Error(), `workflows.w.steps[4].http.url: cannot be called: the file has no http section`) {
		t.Errorf("an http step without an http section: %v", err)
	}

	cfg, err := config.Parse("c.yaml", []byte("slack: { signing_secret: s }\n"), nil, registry)
	if err != nil || strings.Join(cfg.Slack.ResponseURLHosts, ",") != "hooks.slack.com" || cfg.HTTP != nil {
		t.Errorf("defaults: %+v %+v %v", cfg.Slack.ResponseURLHosts, cfg.HTTP, err)
	}
}

func checkProblems(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no problems, want %q", want)
	}
	lines := strings.Split(err.Error(), "\n")
	for i := range max(len(lines), len(want)) {
		switch {
		case i >= len(want):
			t.Errorf("unexpected problem: %s", lines[i])
		case i >= len(lines):
			t.Errorf("missing problem: %s", want[i])
		case !strings.HasPrefix(lines[i], want[i]):
			t.Errorf("problem %d:\n got %s\nwant %s...", i, lines[i], want[i])
		}
	}
}

// ${...} references in step parameters stay references in the plan (the
// run resolves them when the step runs), except where config turns the
// value into something else.
func TestStepReferencesStayInThePlan(t *testing.T) {
	t.Parallel()
	yaml := `http: { allow: [api.example.com] }
clouds: { main: { provider: sim } }
workflows:
  w:
    trigger: { schedule: { cron: "0 3 * * *" } }
    channel: ${CHANNEL}
    steps:
      - http:
          method: ${METHOD}
          url: "https://api.example.com/x?key=${KEY}"
          headers: { Authorization: "Bearer ${TOKEN}", X-Literal: "$${NOT_A_REF}" }
          body: { nested: ["${TOKEN}"] }
      - notify: { text: "token ${file:` + "%s" + `}", channel: "${CHANNEL}" }
`
	file := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(file, []byte("file-secret-7781\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"CHANNEL": "C0OPS", "METHOD": "POST", "KEY": "key-secret-1234", "TOKEN": "tok-secret-5678"}
	cfg, err := config.Parse("c.yaml", []byte(fmt.Sprintf(yaml, file)), env(vars), registry)
	if err != nil {
		t.Fatal(err)
	}
	steps := cfg.Workflows[0].Steps
	checkSteps(t, "w.steps", steps, []wantStep{
		{kind: "http", line: 8, with: `{"method":"POST","url":"https://api.example.com/x?key=${KEY}",
			"headers":{"Authorization":"Bearer ${TOKEN}","X-Literal":"$${NOT_A_REF}"},"body":{"nested":["${TOKEN}"]}}`},
		{kind: "notify", line: 13, with: `{"text":"token ${file:` + file + `}","channel":"C0OPS"}`},
	})
	secrets := cfg.Secrets()
	for in, want := range map[string]string{
		"Bearer ${TOKEN}": "Bearer tok-secret-5678", "${file:" + file + "}": "file-secret-7781", "$${NOT_A_REF}": "${NOT_A_REF}",
	} {
		if got, err := secrets.Resolve(in); err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if got := secrets.Redact("key-secret-1234 tok-secret-5678 file-secret-7781 C0OPS"); got != "[redacted] [redacted] [redacted] C0OPS" {
		t.Errorf("Redact = %q", got)
	}
}

// retention says how long the store keeps audit lines, finished runs and
// delivery keys: days, a duration, or 0 for forever.
func TestRetention(t *testing.T) {
	t.Parallel()
	const base = "clouds: { main: { provider: sim } }\n"
	const day = 24 * time.Hour
	cfg, err := config.Parse("c.yaml", []byte(base), nil, registry)
	if want := (config.Retention{Audit: 90 * day, Runs: 30 * day, Deliveries: 7 * day}); err != nil || cfg.Retention != want {
		t.Fatalf("default retention = %+v, %v", cfg.Retention, err)
	}
	cfg, err = config.Parse("c.yaml", []byte(base+"retention: { audit: 365d, runs: 0, deliveries: 36h }\n"), nil, registry)
	if want := (config.Retention{Audit: 365 * day, Runs: 0, Deliveries: 36 * time.Hour}); err != nil || cfg.Retention != want {
		t.Errorf("retention = %+v, %v", cfg.Retention, err)
	}
	for text, want := range map[string]string{
		"retention: { audit: 3 months }\n": `c.yaml:2: retention.audit: expected a number of days like 90d, a duration like 36h, or 0 to keep forever, got "3 months"`,
		"retention: { deliveries: 1h }\n":  "c.yaml:2: retention.deliveries: must be at least 24h",
		"retention: { events: 1d }\n":      "retention.events",
	} {
		if _, err := config.Parse("c.yaml", []byte(base+text), nil, registry); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %s", text, err, want)
		}
	}
}
