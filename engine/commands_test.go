package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/engine"
)

const (
	idTools   = "i-0123456789abcdef0" // aliased "tools", with an Elastic IP
	idWeb1    = "i-0fedcba9876543210" // role=web
	idWeb2    = "i-0fedcba9876543211" // role=web
	idDB      = "i-0aaaaaaaaaaaaaaa1" // env=prod, out of scope
	idUnknown = "i-0bbbbbbbbbbbbbbb2" // in no cloud
	toolsEIP  = "107.20.248.29"
)

// ec2 is /ec2 as a team would configure it: one instance by id and the web
// fleet by tag.
var ec2 = switchboard.CommandSpec{
	Name:   "/ec2",
	Cloud:  "main",
	Access: switchboard.Access{Users: []string{"U0OPS1"}, Channels: []string{"C0OPS"}},
	Instances: []switchboard.TargetSpec{
		{Alias: "tools", ID: idTools, ElasticIP: toolsEIP},
		{Alias: "web", Tags: map[string]string{"role": "web"}},
	},
	Actions: switchboard.AllActions,
}

// idsOnly is a command whose scope names instances by id only.
var idsOnly = switchboard.CommandSpec{
	Name:      "/ec2",
	Cloud:     "main",
	Access:    switchboard.Access{Users: []string{"U0OPS1"}},
	Instances: []switchboard.TargetSpec{{Alias: "tools", ID: idTools, ElasticIP: toolsEIP}},
	Actions:   []string{switchboard.ActionStatus, switchboard.ActionStart},
}

const ec2Help = "Try `/ec2 status|start|stop|reboot|list [target]`. Targets: tools, web, an instance id, or a tag selector like env=dev."

var (
	tools = switchboard.Target{Text: "tools", Alias: "tools", ID: idTools, ElasticIP: toolsEIP}
	web   = switchboard.Target{Text: "web", Alias: "web", Tags: map[string]string{"role": "web"}}
)

func TestParseCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		spec    switchboard.CommandSpec
		text    string
		action  string
		targets []switchboard.Target
		dryRun  bool
		wantErr string // the whole sentence
	}{
		{name: "empty", spec: ec2, text: "", wantErr: ec2Help},
		{name: "blank", spec: ec2, text: "   ", wantErr: ec2Help},
		{name: "help", spec: ec2, text: "help", wantErr: ec2Help},
		{name: "unknown action", spec: ec2, text: "frobnicate tools", wantErr: `I don't know "frobnicate". ` + ec2Help},
		{
			name: "action not configured", spec: idsOnly, text: "stop tools",
			wantErr: "I don't know \"stop\". Try `/ec2 status|start [target]`. Targets: tools, an instance id, or a tag selector like env=dev.",
		},
		{name: "alias", spec: ec2, text: "start tools", action: "start", targets: []switchboard.Target{tools}},
		{name: "the same target twice is once", spec: ec2, text: "start tools TOOLS tools", action: "start", targets: []switchboard.Target{tools}},
		{
			name: "too many targets", spec: ec2, text: "status " + manyTags(51),
			wantErr: "At most 50 targets in one command; name fewer, or select them with a tag like env=dev.",
		},
		{
			name: "alias in capitals", spec: ec2, text: "START TOOLS", action: "start",
			targets: []switchboard.Target{{Text: "TOOLS", Alias: "tools", ID: idTools, ElasticIP: toolsEIP}},
		},
		{
			name: "id of an aliased instance", spec: idsOnly, text: "start " + idTools, action: "start",
			targets: []switchboard.Target{{Text: idTools, Alias: "tools", ID: idTools, ElasticIP: toolsEIP}},
		},
		{
			name: "id outside an id-only scope", spec: idsOnly, text: "start " + idWeb1,
			wantErr: "/ec2 may not touch " + idWeb1 + ". Targets: tools.",
		},
		{
			name: "id a tag scope may cover", spec: ec2, text: "stop " + idWeb1, action: "stop",
			targets: []switchboard.Target{{Text: idWeb1, ID: idWeb1}},
		},
		{
			name: "tag selector", spec: ec2, text: "status env=dev", action: "status",
			targets: []switchboard.Target{{Text: "env=dev", Tags: map[string]string{"env": "dev"}}},
		},
		{
			name: "two-tag selector", spec: ec2, text: "reboot role=web,env=prod", action: "reboot",
			targets: []switchboard.Target{{Text: "role=web,env=prod", Tags: map[string]string{"role": "web", "env": "prod"}}},
		},
		{
			name: "selector without a key", spec: ec2, text: "start =dev",
			wantErr: `"=dev" is not a tag selector; write it as key=value, e.g. env=dev or role=web,env=prod.`,
		},
		{
			name: "selector with an empty pair", spec: ec2, text: "start role=web,,env=prod",
			wantErr: `"role=web,,env=prod" is not a tag selector; write it as key=value, e.g. env=dev or role=web,env=prod.`,
		},
		{
			name: "selector with a wildcard", spec: ec2, text: "stop env=*",
			wantErr: `"env=*" is not a tag selector; write it as key=value, e.g. env=dev or role=web,env=prod.`,
		},
		{
			name: "unknown target", spec: ec2, text: "start db",
			wantErr: `I don't know the target "db". Targets: tools, web, an instance id, or a tag selector like env=dev.`,
		},
		{
			name: "malformed id", spec: ec2, text: "start i-123",
			wantErr: `I don't know the target "i-123". Targets: tools, web, an instance id, or a tag selector like env=dev.`,
		},
		{name: "start without a target", spec: ec2, text: "start", wantErr: "Which instance? Try `/ec2 start tools`. Targets: tools, web."},
		{name: "stop with only a flag", spec: ec2, text: "stop --dry-run", wantErr: "Which instance? Try `/ec2 stop tools`. Targets: tools, web."},
		{name: "status of everything", spec: ec2, text: "status", action: "status", targets: []switchboard.Target{tools, web}},
		{name: "list", spec: ec2, text: "list", action: "list", targets: []switchboard.Target{tools, web}},
		{name: "dry run", spec: ec2, text: "start tools --dry-run", action: "start", targets: []switchboard.Target{tools}, dryRun: true},
		{
			name: "several targets", spec: ec2, text: "stop tools web", action: "stop",
			targets: []switchboard.Target{tools, web},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd, err := engine.ParseCommand(tt.spec, tt.text)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseCommand(%q) = %+v, want error %q", tt.text, cmd, tt.wantErr)
				}
				if err.Code != switchboard.EINVALID || err.Message != tt.wantErr {
					t.Errorf("ParseCommand(%q) error = %s %q\nwant invalid %q", tt.text, err.Code, err.Message, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCommand(%q): %v", tt.text, err)
			}
			if cmd.Command != tt.spec.Name || cmd.Action != tt.action || cmd.DryRun != tt.dryRun {
				t.Errorf("ParseCommand(%q) = %s %s dry-run=%v, want %s %s dry-run=%v", tt.text, cmd.Command, cmd.Action, cmd.DryRun, tt.spec.Name, tt.action, tt.dryRun)
			}
			if !reflect.DeepEqual(cmd.Targets, tt.targets) {
				t.Errorf("targets = %+v\nwant %+v", cmd.Targets, tt.targets)
			}
			if !reflect.DeepEqual(cmd.Scope, tt.spec.Instances) {
				t.Errorf("scope = %+v, want the command's instances", cmd.Scope)
			}
		})
	}
}

func TestAckText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text string
		want string
	}{
		{"start tools", "Checking tools (i-0123456789abcdef0) to start what is stopped — I'll report back here."},
		{"stop web", "Checking web (role=web) to stop what is running — I'll report back here."},
		{"reboot role=web,env=prod", "Checking env=prod,role=web to reboot what is running — I'll report back here."},
		{"status " + idWeb1, "Checking i-0fedcba9876543210 — I'll report back here."},
		{"status", "Checking tools (i-0123456789abcdef0), web (role=web) — I'll report back here."},
		{"list", "Listing the instances /ec2 may touch — I'll report back here."},
		{"start tools --dry-run", "Dry run, nothing will change: checking whether tools (i-0123456789abcdef0) could be started — I'll report back here."},
	}
	for _, tt := range tests {
		cmd, err := engine.ParseCommand(ec2, tt.text)
		if err != nil {
			t.Fatalf("ParseCommand(%q): %v", tt.text, err)
		}
		if got := cmd.AckText(); got != tt.want {
			t.Errorf("%q: AckText = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestNewRunID(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	a, b := engine.NewRunID(now), engine.NewRunID(now)
	if a == b {
		t.Errorf("two ids at the same time are both %q", a)
	}
	later := engine.NewRunID(now.Add(time.Millisecond))
	if !strings.HasPrefix(a, "r-") || !(a < later && b < later) {
		t.Errorf("ids %q, %q then %q: want the r- prefix and creation order", a, b, later)
	}
}

// runBook is a RunCreator that keeps what it was given.
type runBook struct {
	mu      sync.Mutex
	runs    []*switchboard.Run
	created [][]switchboard.AuditEvent // the audit lines written with each run
	audit   []switchboard.AuditEvent   // the lines written on their own
	// existing, when set, is the run of an earlier delivery of the same request.
	existing *switchboard.Run
	err      error
}

func (b *runBook) CreateRun(_ context.Context, run *switchboard.Run, audit []switchboard.AuditEvent) (*switchboard.Run, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return nil, b.err
	}
	if b.existing != nil {
		return b.existing, nil
	}
	b.runs = append(b.runs, run)
	b.created = append(b.created, audit)
	return nil, nil
}

func (b *runBook) Audit(_ context.Context, ev switchboard.AuditEvent) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.audit = append(b.audit, ev)
	return nil
}

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func request(text string) switchboard.Request {
	return switchboard.Request{Source: "slack", Command: "/ec2", Text: text, UserID: "U0OPS1", ChannelID: "C0OPS", DeliveryID: "trig-1"}
}

func TestHandleCommandRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		req      func(r *switchboard.Request)
		wantCode string
		wantText string
	}{
		{
			name: "unknown command", req: func(r *switchboard.Request) { r.Command = "/ecs" },
			wantCode: switchboard.EINVALID, wantText: "Switchboard has no /ecs command. Commands here: /ec2.",
		},
		{
			name: "user not allowed", req: func(r *switchboard.Request) { r.UserID = "U0GUEST" },
			wantCode: switchboard.EFORBIDDEN, wantText: "Sorry, you may not use /ec2 here: you are not on this command's allow list.",
		},
		{
			name: "channel not allowed", req: func(r *switchboard.Request) { r.ChannelID = "C0RANDOM" },
			wantCode: switchboard.EFORBIDDEN, wantText: "Sorry, you may not use /ec2 here: this command is not allowed in this channel.",
		},
		{
			name: "bad command", req: func(r *switchboard.Request) { r.Text = "start" },
			wantCode: switchboard.EINVALID, wantText: "Which instance? Try `/ec2 start tools`. Targets: tools, web.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			book := &runBook{}
			c := &engine.Commands{Specs: []switchboard.CommandSpec{ec2}, Runs: book, NowFunc: func() time.Time { return t0 }}
			req := request("start tools")
			tt.req(&req)
			ack, err := c.HandleCommand(context.Background(), req)
			var e *switchboard.Error
			if !errors.As(err, &e) {
				t.Fatalf("HandleCommand = %+v, %v; want a *switchboard.Error", ack, err)
			}
			if e.Code != tt.wantCode || e.Message != tt.wantText {
				t.Errorf("error = %s %q, want %s %q", e.Code, e.Message, tt.wantCode, tt.wantText)
			}
			if ack != (switchboard.Ack{}) {
				t.Errorf("ack = %+v, want none", ack)
			}
			if len(book.runs) != 0 {
				t.Errorf("a refused command created %d runs", len(book.runs))
			}
			if len(book.audit) != 1 {
				t.Fatalf("audit = %+v, want one line", book.audit)
			}
			ev := book.audit[0]
			if ev.Kind != switchboard.AuditDecision || ev.Outcome != "refused" || ev.Actor != req.UserID ||
				ev.Channel != req.ChannelID || ev.Subject != req.Command+" "+req.Text || !ev.Time.Equal(t0) || ev.Detail == "" {
				t.Errorf("audit line = %+v", ev)
			}
		})
	}
}

func TestHandleCommandCreatesRun(t *testing.T) {
	t.Parallel()
	book := &runBook{}
	c := &engine.Commands{Specs: []switchboard.CommandSpec{ec2}, Runs: book, NowFunc: func() time.Time { return t0 }}
	ack, err := c.HandleCommand(context.Background(), request("start tools"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "Checking tools (i-0123456789abcdef0) to start what is stopped — I'll report back here."; ack.Text != want {
		t.Errorf("ack = %q, want %q", ack.Text, want)
	}
	if len(book.runs) != 1 {
		t.Fatalf("created %d runs, want 1", len(book.runs))
	}
	run := book.runs[0]
	if run.ID == "" || ack.RunID != run.ID {
		t.Errorf("ack run id %q, run id %q", ack.RunID, run.ID)
	}
	if run.Workflow != "ec2.start" || run.Cloud != "main" || run.State != switchboard.RunQueued || run.Cursor != 0 {
		t.Errorf("run = %s on %s, %s at %d; want ec2.start on main, queued at 0", run.Workflow, run.Cloud, run.State, run.Cursor)
	}
	if !run.CreatedAt.Equal(t0) || !run.Request.ReceivedAt.Equal(t0) || run.Request.Text != "start tools" {
		t.Errorf("run created %v, request %+v", run.CreatedAt, run.Request)
	}
	if len(run.Plan) != 1 || run.Plan[0].Kind != engine.StepInstances {
		t.Fatalf("plan = %+v, want one instances step", run.Plan)
	}
	var cmd switchboard.InstanceCommand
	if err := json.Unmarshal(run.Plan[0].With, &cmd); err != nil {
		t.Fatal(err)
	}
	want, _ := engine.ParseCommand(ec2, "start tools")
	if !reflect.DeepEqual(cmd, want) {
		t.Errorf("step parameters = %+v\nwant %+v", cmd, want)
	}
	if len(book.created) != 1 || len(book.created[0]) != 2 {
		t.Fatalf("audit written with the run = %+v, want two lines", book.created)
	}
	for i, wantKind := range []string{switchboard.AuditRequest, switchboard.AuditDecision} {
		ev := book.created[0][i]
		if ev.Kind != wantKind || ev.RunID != run.ID || ev.Actor != "U0OPS1" || ev.Channel != "C0OPS" || ev.Subject != "/ec2 start tools" {
			t.Errorf("audit line %d = %+v", i, ev)
		}
	}
	if got := book.created[0][1].Outcome; got != "allowed" {
		t.Errorf("decision = %q, want allowed", got)
	}
	if len(book.audit) != 0 {
		t.Errorf("an allowed command wrote audit lines outside its run: %+v", book.audit)
	}
}

// A repeated delivery of the same request points at the run of the first.
func TestHandleCommandRepeatedDelivery(t *testing.T) {
	t.Parallel()
	book := &runBook{existing: &switchboard.Run{ID: "r-first"}}
	c := &engine.Commands{Specs: []switchboard.CommandSpec{ec2}, Runs: book}
	ack, err := c.HandleCommand(context.Background(), request("stop tools"))
	if err != nil {
		t.Fatal(err)
	}
	if ack.RunID != "r-first" {
		t.Errorf("ack run id = %q, want the existing run r-first", ack.RunID)
	}
	if want := "Checking tools (i-0123456789abcdef0) to stop what is running — I'll report back here."; ack.Text != want {
		t.Errorf("ack = %q, want %q", ack.Text, want)
	}
}

// A store that fails is an internal error, not a sentence for the user.
func TestHandleCommandStoreFails(t *testing.T) {
	t.Parallel()
	book := &runBook{err: errors.New("database is locked")}
	c := &engine.Commands{Specs: []switchboard.CommandSpec{ec2}, Runs: book}
	_, err := c.HandleCommand(context.Background(), request("start tools"))
	if err == nil || switchboard.ErrorCode(err) != switchboard.EINTERNAL {
		t.Errorf("HandleCommand error = %v, want an internal error", err)
	}
}

// manyTags is n different tag selectors.
func manyTags(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("n=%d", i)
	}
	return strings.Join(parts, " ")
}
