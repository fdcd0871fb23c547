package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/engine"
	"github.com/switchboardhq/switchboard/sim"
	"github.com/switchboardhq/switchboard/steps"
)

const (
	pendingFor  = 30 * time.Second
	stoppingFor = 20 * time.Second
	poll        = 2 * time.Second
	web1IP      = "198.51.100.10"
)

// fleet is the account /ec2 acts on: tools stopped, two web servers (one
// running, one stopped) and a database /ec2 may not touch.
func fleet() []switchboard.Instance {
	return []switchboard.Instance{
		{ID: idTools, Name: "tools", State: switchboard.StateStopped, Tags: map[string]string{"env": "dev"}},
		{ID: idWeb1, Name: "web-1", State: switchboard.StateRunning, PublicIP: web1IP, Tags: map[string]string{"role": "web"}},
		{ID: idWeb2, Name: "web-2", State: switchboard.StateStopped, Tags: map[string]string{"role": "web"}},
		{ID: idDB, Name: "db", State: switchboard.StateRunning, PublicIP: "198.51.100.20", Tags: map[string]string{"env": "prod", "role": "db"}},
	}
}

// withTools is the fleet with tools in another state.
func withTools(state switchboard.InstanceState) []switchboard.Instance {
	f := fleet()
	f[0].State = state
	if state == switchboard.StateRunning || state == switchboard.StateStopping {
		f[0].PublicIP = toolsEIP
	}
	return f
}

// saver is a RunSaver that keeps a copy of every checkpoint.
type saver struct {
	mu    sync.Mutex
	saved []switchboard.Run
	err   error
}

func (s *saver) SaveRun(_ context.Context, run *switchboard.Run) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.saved = append(s.saved, clone(run))
	return nil
}

func (s *saver) last() switchboard.Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clone(&s.saved[len(s.saved)-1])
}

// clone copies a run the way a store round trip does.
func clone(run *switchboard.Run) switchboard.Run {
	b, err := json.Marshal(run)
	if err != nil {
		panic(err)
	}
	var out switchboard.Run
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// locks is an in-memory Locker.
type locks struct {
	mu   sync.Mutex
	held map[string]string // key -> run id
}

func (l *locks) LockInstances(_ context.Context, runID string, keys []string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if h, ok := l.held[k]; ok && h != runID {
			return h, nil
		}
	}
	for _, k := range keys {
		l.held[k] = runID
	}
	return "", nil
}

func (l *locks) hold(key, runID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held[key] = runID
}

func (l *locks) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, key)
}

// harness is a runner on a simulated cloud, with the clock in the test's hands.
type harness struct {
	t        *testing.T
	clock    *sim.Clock
	cloud    *sim.Cloud
	runner   *engine.Runner
	saver    *saver
	locks    *locks
	commands *engine.Commands
	book     *runBook
}

func newHarness(t *testing.T, instances []switchboard.Instance, tune func(*sim.Options)) *harness {
	t.Helper()
	clock := sim.NewClock(t0)
	opts := sim.Options{
		Instances:        instances,
		ElasticIPs:       []string{toolsEIP},
		PendingDuration:  pendingFor,
		StoppingDuration: stoppingFor,
		RebootDuration:   5 * time.Second,
		NowFunc:          clock.Now,
		Limits:           sim.Limits{Unlimited: true},
	}
	if tune != nil {
		tune(&opts)
	}
	h := &harness{t: t, clock: clock, cloud: sim.New(opts), saver: &saver{}, locks: &locks{held: map[string]string{}}, book: &runBook{}}
	h.runner = &engine.Runner{
		Steps:        switchboard.NewRegistry(steps.Builtin()...),
		Providers:    map[string]switchboard.Provider{"main": h.cloud},
		Locks:        h.locks,
		NowFunc:      clock.Now,
		PollInterval: poll,
	}
	h.commands = &engine.Commands{Specs: []switchboard.CommandSpec{ec2}, Runs: h.book, NowFunc: clock.Now}
	return h
}

// run asks /ec2 for text and returns the run it created.
func (h *harness) run(text string) *switchboard.Run {
	h.t.Helper()
	ack, err := h.commands.HandleCommand(context.Background(), request(text))
	if err != nil {
		h.t.Fatalf("/ec2 %s: %v", text, err)
	}
	for _, r := range h.book.runs {
		if r.ID == ack.RunID {
			return r
		}
	}
	h.t.Fatalf("/ec2 %s: no run %s", text, ack.RunID)
	return nil
}

func (h *harness) advance(run *switchboard.Run) (switchboard.Outcome, error) {
	return h.runner.Advance(context.Background(), run, h.saver)
}

// finish advances run, moving the clock by each wait, until it ends, and
// returns every message it said.
func (h *harness) finish(run *switchboard.Run) []switchboard.Message {
	h.t.Helper()
	var msgs []switchboard.Message
	for range 1000 {
		out, err := h.advance(run)
		if err != nil {
			h.t.Fatalf("advance: %v", err)
		}
		msgs = append(msgs, out.Messages...)
		if run.State.Finished() {
			return msgs
		}
		if out.Wait <= 0 {
			h.t.Fatalf("run is %s without a wait", run.State)
		}
		h.clock.Advance(out.Wait)
	}
	h.t.Fatalf("run %s did not finish", run.ID)
	return nil
}

func (h *harness) instance(id string) sim.Detail {
	h.t.Helper()
	d, ok := h.cloud.Instance(id)
	if !ok {
		h.t.Fatalf("instance %s is gone", id)
	}
	return d
}

func (h *harness) calls(action string) int { return h.cloud.Stats().Calls[action] }

func texts(msgs []switchboard.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Text
	}
	return out
}

func phase(t *testing.T, run *switchboard.Run) string {
	t.Helper()
	var p struct {
		Phase string `json:"phase"`
	}
	if len(run.Scratch) > 0 {
		if err := json.Unmarshal(run.Scratch, &p); err != nil {
			t.Fatalf("scratch %s: %v", run.Scratch, err)
		}
	}
	return p.Phase
}

func hasAudit(out switchboard.Outcome, kind, subject, outcome string) bool {
	return slices.ContainsFunc(out.Audit, func(ev switchboard.AuditEvent) bool {
		return ev.Kind == kind && ev.Subject == subject && ev.Outcome == outcome
	})
}

func TestStartStoppedInstance(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleet(), nil)
	run := h.run("start tools")

	out, err := h.advance(run)
	if err != nil {
		t.Fatal(err)
	}
	if out.Wait <= 0 || run.State != switchboard.RunWaiting || phase(t, run) != "waiting" {
		t.Fatalf("after the start: wait %v, run %s in phase %q; want it parked waiting", out.Wait, run.State, phase(t, run))
	}
	if len(out.Messages) != 0 {
		t.Errorf("said %q before the instance was up", texts(out.Messages))
	}
	if len(run.Steps) != 1 || run.Steps[0].State != switchboard.StepWaiting || run.Steps[0].Kind != "instances" || run.Steps[0].StartedAt.IsZero() {
		t.Errorf("step records while waiting = %+v, want one waiting instances step", run.Steps)
	}
	if !hasAudit(out, switchboard.AuditAction, "start "+idTools, "ok") {
		t.Errorf("audit = %+v, want the start", out.Audit)
	}
	if got := h.instance(idTools).State; got != switchboard.StatePending {
		t.Errorf("tools is %s, want pending", got)
	}
	if saved := h.saver.last(); phase(t, &saved) != "waiting" {
		t.Errorf("the last checkpoint is in phase %q, want waiting", phase(t, &saved))
	}

	// Still booting: parked again, nothing said.
	h.clock.Advance(out.Wait)
	out, err = h.advance(run)
	if err != nil || out.Wait <= 0 || len(out.Messages) != 0 {
		t.Fatalf("while pending: %+v, %v; want a quiet wait", out, err)
	}

	h.clock.Advance(pendingFor)
	out, err = h.advance(run)
	if err != nil {
		t.Fatal(err)
	}
	want := "tools (i-0123456789abcdef0) is now running at 107.20.248.29."
	if got := texts(out.Messages); len(got) != 1 || got[0] != want {
		t.Errorf("answer = %q, want [%q]", got, want)
	}
	if run.State != switchboard.RunSucceeded || run.Result != want || run.FinishedAt.IsZero() || out.Wait != 0 {
		t.Errorf("run = %s, result %q, finished %v, wait %v", run.State, run.Result, run.FinishedAt, out.Wait)
	}
	if run.Outcome != "" {
		t.Errorf("a start that started the instance has outcome %q", run.Outcome)
	}
	if st := run.Steps; len(st) != 1 || st[0].State != switchboard.StepSucceeded || st[0].FinishedAt.Sub(st[0].StartedAt) < pendingFor {
		t.Errorf("step records = %+v, want the one step succeeded after the instance's boot", st)
	}
	m := out.Messages[0]
	if m.RunID != run.ID || m.ChannelID != "C0OPS" || m.Source != "slack" || !m.RequestedAt.Equal(run.Request.ReceivedAt) {
		t.Errorf("message = %+v", m)
	}
	d := h.instance(idTools)
	if d.State != switchboard.StateRunning || d.ElasticIP != toolsEIP || d.PublicIP != toolsEIP {
		t.Errorf("tools is %s at %s (Elastic IP %q), want running at %s", d.State, d.PublicIP, d.ElasticIP, toolsEIP)
	}
	if !hasAudit(out, switchboard.AuditAction, "associate "+toolsEIP+" "+idTools, "ok") ||
		!hasAudit(out, switchboard.AuditRun, "ec2.start", "succeeded") {
		t.Errorf("audit = %+v, want the association and the run's end", out.Audit)
	}
	if n := h.calls("StartInstances"); n != 1 {
		t.Errorf("StartInstances called %d times, want 1", n)
	}
}

func TestStopRunningInstance(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withTools(switchboard.StateRunning), nil)
	run := h.run("stop tools")
	got := texts(h.finish(run))
	if want := "tools (i-0123456789abcdef0) is now stopped."; len(got) != 1 || got[0] != want {
		t.Errorf("answers = %q, want [%q]", got, want)
	}
	if run.State != switchboard.RunSucceeded {
		t.Errorf("run is %s, want succeeded", run.State)
	}
	if d := h.instance(idTools); d.State != switchboard.StateStopped || d.PublicIP != toolsEIP {
		t.Errorf("tools is %s at %q; want stopped, keeping its Elastic IP", d.State, d.PublicIP)
	}
}

// A tag selector acts on every instance it matches, and reports the ones
// already where they should be first.
func TestStartByTag(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleet(), nil)
	run := h.run("start role=web")
	got := texts(h.finish(run))
	web2 := h.instance(idWeb2)
	want := "web-1 (i-0fedcba9876543210) is already running at 198.51.100.10.\n" +
		"web-2 (i-0fedcba9876543211) is now running at " + web2.PublicIP + "."
	if len(got) != 1 || got[0] != want || web2.PublicIP == "" {
		t.Errorf("answers = %q, want [%q]", got, want)
	}
	if n := h.calls("AssociateAddress"); n != 0 {
		t.Errorf("AssociateAddress called %d times for instances without an Elastic IP", n)
	}
}

// Commands whose answer the instances' states already give: no waiting.
func TestAdvanceAnswersAtOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fleet     []switchboard.Instance
		text      string
		want      string
		wantState switchboard.RunState
		// outcome is how a run that changed nothing ended: refused or
		// nothing to do, not a bare success.
		outcome   string
		untouched []string // actions that must not be called
		check     func(t *testing.T, h *harness)
	}{
		{
			name: "start running", outcome: switchboard.OutcomeNoop, fleet: withTools(switchboard.StateRunning), text: "start tools",
			want:      "tools (i-0123456789abcdef0) is already running at 107.20.248.29.",
			untouched: []string{"StartInstances", "AssociateAddress"},
		},
		{
			name: "start pending", outcome: switchboard.OutcomeNoop, fleet: withTools(switchboard.StatePending), text: "start tools",
			want:      "tools (i-0123456789abcdef0) is still booting (pending); it will be running shortly.",
			untouched: []string{"StartInstances"},
		},
		{
			name: "start stopping", outcome: switchboard.OutcomeNoop, fleet: withTools(switchboard.StateStopping), text: "start tools",
			want:      "tools (i-0123456789abcdef0) is stopping; start it again once it has stopped.",
			untouched: []string{"StartInstances"},
		},
		{
			name: "start terminated", outcome: switchboard.OutcomeNoop, fleet: withTools(switchboard.StateTerminated), text: "start tools",
			want:      "tools (i-0123456789abcdef0) is terminated and cannot be started.",
			untouched: []string{"StartInstances"},
		},
		{
			name: "stop stopped", outcome: switchboard.OutcomeNoop, fleet: fleet(), text: "stop tools",
			want:      "tools (i-0123456789abcdef0) is already stopped.",
			untouched: []string{"StopInstances"},
		},
		{
			name: "stop stopping", outcome: switchboard.OutcomeNoop, fleet: withTools(switchboard.StateStopping), text: "stop tools",
			want:      "tools (i-0123456789abcdef0) is already stopping.",
			untouched: []string{"StopInstances"},
		},
		{
			name: "stop pending", outcome: switchboard.OutcomeNoop, fleet: withTools(switchboard.StatePending), text: "stop tools",
			want:      "tools (i-0123456789abcdef0) is still booting (pending); stop it once it is running.",
			untouched: []string{"StopInstances"},
		},
		{
			name: "reboot running", fleet: withTools(switchboard.StateRunning), text: "reboot tools",
			want: "tools (i-0123456789abcdef0) was rebooted; it will be back in a minute or two.",
			check: func(t *testing.T, h *harness) {
				if d := h.instance(idTools); d.Reboots != 1 || !d.Rebooting {
					t.Errorf("tools: %d reboots, rebooting %v; want one under way", d.Reboots, d.Rebooting)
				}
			},
		},
		{
			name: "reboot stopped", outcome: switchboard.OutcomeNoop, fleet: fleet(), text: "reboot tools",
			want:      "tools (i-0123456789abcdef0) is stopped; only a running instance can be rebooted.",
			untouched: []string{"RebootInstances"},
		},
		{
			name: "status running", fleet: withTools(switchboard.StateRunning), text: "status tools",
			want: "tools (i-0123456789abcdef0) is running at 107.20.248.29.",
		},
		{
			name: "status stopped", fleet: fleet(), text: "status tools",
			want: "tools (i-0123456789abcdef0) is stopped. To start it: `/ec2 start tools`",
		},
		{
			name: "status pending", fleet: withTools(switchboard.StatePending), text: "status tools",
			want: "tools (i-0123456789abcdef0) is starting (pending); check back in a minute.",
		},
		{
			name: "status stopping", fleet: withTools(switchboard.StateStopping), text: "status tools",
			want: "tools (i-0123456789abcdef0) is stopping; check back in a minute.",
		},
		{
			name: "status terminated", fleet: withTools(switchboard.StateTerminated), text: "status tools",
			want: "tools (i-0123456789abcdef0) is terminated.",
		},
		{
			name: "status by id", fleet: fleet(), text: "status " + idWeb2,
			want: "web-2 (i-0fedcba9876543211) is stopped. To start it: `/ec2 start i-0fedcba9876543211`",
		},
		{
			name: "status of everything", fleet: fleet(), text: "status",
			want: "tools (i-0123456789abcdef0) is stopped. To start it: `/ec2 start tools`\n" +
				"web-1 (i-0fedcba9876543210) is running at 198.51.100.10.\n" +
				"web-2 (i-0fedcba9876543211) is stopped. To start it: `/ec2 start i-0fedcba9876543211`",
		},
		{
			name: "list", fleet: fleet(), text: "list",
			want: "• tools (i-0123456789abcdef0) — stopped — t3.micro — env=dev\n" +
				"• web-1 (i-0fedcba9876543210) — running — t3.micro — 198.51.100.10 — role=web\n" +
				"• web-2 (i-0fedcba9876543211) — stopped — t3.micro — role=web",
		},
		{
			name: "list out of scope", fleet: fleet(), text: "list env=prod",
			want: "env=prod matches no instance /ec2 may touch.\nNo instances match.",
		},
		{
			name: "selector out of scope", outcome: switchboard.OutcomeRefused, fleet: fleet(), text: "stop env=prod",
			want:      "env=prod matches no instance /ec2 may touch.",
			untouched: []string{"StopInstances"},
		},
		{
			name: "id out of scope", outcome: switchboard.OutcomeRefused, fleet: fleet(), text: "stop " + idDB,
			want:      "/ec2 may not touch db (i-0aaaaaaaaaaaaaaa1).",
			untouched: []string{"StopInstances"},
		},
		{
			name: "unknown id", outcome: switchboard.OutcomeNoop, fleet: fleet(), text: "start " + idUnknown,
			want:      "i-0bbbbbbbbbbbbbbb2 was not found in cloud main.",
			untouched: []string{"StartInstances"},
		},
		{
			name: "dry run", fleet: fleet(), text: "start tools --dry-run",
			want:      "Dry run: I would start tools (i-0123456789abcdef0), and the cloud says that is allowed; nothing was changed.",
			untouched: []string{"AssociateAddress"},
			check: func(t *testing.T, h *harness) {
				if d := h.instance(idTools); d.State != switchboard.StateStopped {
					t.Errorf("a dry run left tools %s", d.State)
				}
			},
		},
		{
			name: "dry run of a stop", fleet: fleet(), text: "stop role=web --dry-run",
			want: "web-2 (i-0fedcba9876543211) is already stopped.\n" +
				"Dry run: I would stop web-1 (i-0fedcba9876543210), and the cloud says that is allowed; nothing was changed.",
			check: func(t *testing.T, h *harness) {
				if d := h.instance("i-0fedcba9876543210"); d.State != switchboard.StateRunning {
					t.Errorf("a dry run left web-1 %s", d.State)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tt.fleet, nil)
			run := h.run(tt.text)
			out, err := h.advance(run)
			if err != nil {
				t.Fatal(err)
			}
			if got := texts(out.Messages); len(got) != 1 || got[0] != tt.want {
				t.Errorf("answers = %q\nwant [%q]", got, tt.want)
			}
			wantState := tt.wantState
			if wantState == "" {
				wantState = switchboard.RunSucceeded
			}
			if run.State != wantState || out.Wait != 0 {
				t.Errorf("run is %s with wait %v, want %s", run.State, out.Wait, wantState)
			}
			if run.Outcome != tt.outcome {
				t.Errorf("run's outcome is %q, want %q", run.Outcome, tt.outcome)
			}
			for _, action := range tt.untouched {
				if n := h.calls(action); n != 0 {
					t.Errorf("%s called %d times", action, n)
				}
			}
			if tt.check != nil {
				tt.check(t, h)
			}
		})
	}
}

// A run waits for a run holding its instance, and says so once.
func TestLockHeldByAnotherRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleet(), nil)
	h.locks.hold("main/"+idTools, "r-other")
	run := h.run("start tools")

	out, err := h.advance(run)
	if err != nil {
		t.Fatal(err)
	}
	want := "Another run (r-other) is working on tools (i-0123456789abcdef0); I'll go on when it is done."
	if got := texts(out.Messages); len(got) != 1 || got[0] != want {
		t.Errorf("answers = %q, want [%q]", got, want)
	}
	if out.Wait <= 0 || run.State != switchboard.RunWaiting {
		t.Errorf("run is %s with wait %v, want it waiting", run.State, out.Wait)
	}
	for range 3 {
		h.clock.Advance(out.Wait)
		out, err = h.advance(run)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) != 0 || out.Wait <= 0 {
			t.Errorf("while still locked: said %q, wait %v; want a quiet wait", texts(out.Messages), out.Wait)
		}
	}
	if n := h.calls("StartInstances"); n != 0 {
		t.Errorf("StartInstances called %d times while another run held tools", n)
	}

	h.locks.release("main/" + idTools)
	got := texts(h.finish(run))
	if want := "tools (i-0123456789abcdef0) is now running at 107.20.248.29."; len(got) != 1 || got[0] != want {
		t.Errorf("answers after the lock = %q, want [%q]", got, want)
	}
}

// Every message a run says has its own key, so the store, which drops a
// second message with the same run and key, posts them all.
func TestMessageKeysUniquePerRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleet(), nil)
	h.locks.hold("main/"+idTools, "r-other")
	run := h.run("start tools")
	out, err := h.advance(run)
	if err != nil {
		t.Fatal(err)
	}
	msgs := out.Messages
	h.locks.release("main/" + idTools)
	h.clock.Advance(out.Wait)
	msgs = append(msgs, h.finish(run)...)
	if len(msgs) != 2 {
		t.Fatalf("said %q, want the lock notice and the answer", texts(msgs))
	}
	seen := map[string]string{}
	for _, m := range msgs {
		if prev, dup := seen[m.Key]; dup {
			t.Errorf("key %q is used for %q and %q", m.Key, prev, m.Text)
		}
		seen[m.Key] = m.Text
	}
}

// Within one Advance, messages of different steps and of one step differ.
func TestMessageKeysWithinAnAdvance(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleet(), nil)
	run := h.run("status")
	run.Plan = append(run.Plan, run.Plan[0])
	msgs := h.finish(run)
	if len(msgs) != 2 || msgs[0].Key == msgs[1].Key {
		t.Errorf("keys %q, %q; want two different keys", msgs[0].Key, msgs[1].Key)
	}
}

// Throttling parks the run; it neither fails it nor returns an error.
func TestThrottled(t *testing.T) {
	t.Parallel()
	t.Run("fault with retry-after", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, fleet(), nil)
		h.cloud.InjectFault(sim.Fault{Action: "StartInstances", Times: 1, Err: &switchboard.CloudError{
			Code: "RequestLimitExceeded", Message: "Request limit exceeded.", Kind: switchboard.ETHROTTLED, RetryAfter: 7 * time.Second}})
		run := h.run("start tools")
		out, err := h.advance(run)
		if err != nil {
			t.Fatal(err)
		}
		if out.Wait != 7*time.Second || run.State != switchboard.RunWaiting || len(out.Messages) != 0 {
			t.Fatalf("run is %s, wait %v, said %q; want a quiet 7s wait", run.State, out.Wait, texts(out.Messages))
		}
		got := texts(h.finish(run))
		if want := "tools (i-0123456789abcdef0) is now running at 107.20.248.29."; len(got) != 1 || got[0] != want {
			t.Errorf("answers = %q, want [%q]", got, want)
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, fleet(), func(o *sim.Options) {
			o.Limits = sim.Limits{Describe: sim.Bucket{Burst: 1, PerSecond: 1}}
		})
		if _, err := h.cloud.DescribeInstances(context.Background(), switchboard.Filter{}); err != nil {
			t.Fatal(err)
		}
		run := h.run("start tools")
		out, err := h.advance(run)
		if err != nil {
			t.Fatal(err)
		}
		if out.Wait <= 0 || run.State != switchboard.RunWaiting || len(out.Messages) != 0 {
			t.Fatalf("run is %s, wait %v, said %q; want a quiet wait", run.State, out.Wait, texts(out.Messages))
		}
		if h.cloud.Stats().Throttled != 1 || h.calls("StartInstances") != 0 {
			t.Errorf("stats = %+v", h.cloud.Stats())
		}
		got := texts(h.finish(run))
		if want := "tools (i-0123456789abcdef0) is now running at 107.20.248.29."; len(got) != 1 || got[0] != want {
			t.Errorf("answers = %q, want [%q]", got, want)
		}
	})
}

// A refusal from the cloud ends the run and says what the cloud said.
func TestCloudRefuses(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleet(), nil)
	h.cloud.InjectFault(sim.Fault{Action: "StartInstances", Err: &switchboard.CloudError{
		Code:    "IncorrectInstanceState",
		Message: "The instance 'i-0123456789abcdef0' is not in a state from which it can be started.",
		Kind:    switchboard.ECONFLICT,
		IDs:     []string{idTools},
	}})
	run := h.run("start tools")
	out, err := h.advance(run)
	if err != nil {
		t.Fatal(err)
	}
	want := "Could not start tools (i-0123456789abcdef0): The cloud answered IncorrectInstanceState: The instance 'i-0123456789abcdef0' is not in a state from which it can be started."
	if got := texts(out.Messages); len(got) != 1 || got[0] != want {
		t.Errorf("answers = %q\nwant [%q]", got, want)
	}
	if run.State != switchboard.RunFailed || run.Error != want || run.FinishedAt.IsZero() {
		t.Errorf("run is %s with error %q", run.State, run.Error)
	}
	if !hasAudit(out, switchboard.AuditAction, "start "+idTools, "failed") || !hasAudit(out, switchboard.AuditRun, "ec2.start", "failed") {
		t.Errorf("audit = %+v", out.Audit)
	}
}

// An outage is transient: Advance parks the run, decides nothing, tells the
// channel at once that the cloud is not answering and until when it will
// be tried, and a later Advance carries on.
func TestCloudUnavailable(t *testing.T) {
	t.Parallel()
	for _, action := range []string{"DescribeInstances", "StartInstances"} {
		t.Run(action, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, fleet(), nil)
			h.runner.CloudTitles = map[string]string{"main": "the simulated cloud"}
			h.cloud.InjectFault(sim.Fault{Action: action, Times: 1})
			run := h.run("start tools")
			out, err := h.advance(run)
			if err != nil || out.Wait <= 0 {
				t.Fatalf("Advance = wait %v, error %v; want the run parked", out.Wait, err)
			}
			until := h.clock.Now().Add(30 * time.Minute).UTC().Format("15:04 UTC")
			want := "The simulated cloud is not answering; I'll keep trying until " + until + "."
			if got := texts(out.Messages); run.State.Finished() || run.Error != "" || len(got) != 1 || got[0] != want {
				t.Errorf("run is %s (%q), said %q; want it undecided and %q", run.State, run.Error, got, want)
			}
			h.clock.Advance(out.Wait)
			got := texts(h.finish(run))
			if want := "tools (i-0123456789abcdef0) is now running at 107.20.248.29."; len(got) != 1 || got[0] != want {
				t.Errorf("answers = %q, want [%q]", got, want)
			}
		})
	}
}

// A worker that dies after the "acting" checkpoint leaves a run whose next
// Advance makes the call again; the instance is started once and the channel
// told once.
func TestResumeAfterActing(t *testing.T) {
	t.Parallel()
	for _, applied := range []bool{false, true} {
		name := "call failed"
		if applied {
			name = "answer lost"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, fleet(), nil)
			h.cloud.InjectFault(sim.Fault{Action: "StartInstances", Times: 1, Applied: applied})
			first := h.run("start tools")
			if out, err := h.advance(first); err != nil || out.Wait <= 0 || first.State.Finished() {
				t.Fatalf("Advance through an injected fault: %s, wait %v, error %v; want it parked", first.State, out.Wait, err)
			}
			// What a new worker reads back: the last checkpoint.
			run := h.saver.last()
			if phase(t, &run) != "acting" {
				t.Fatalf("the last checkpoint is in phase %q, want acting", phase(t, &run))
			}
			h.clock.Advance(time.Second)
			got := texts(h.finish(&run))
			if want := "tools (i-0123456789abcdef0) is now running at 107.20.248.29."; len(got) != 1 || got[0] != want {
				t.Errorf("answers = %q, want [%q]", got, want)
			}
			st := h.cloud.Stats()
			if st.Calls["StartInstances"] != 2 || st.Failed != 1 {
				t.Errorf("stats = %+v; want two StartInstances, one failed", st)
			}
			wantLaunch := t0.Add(time.Second)
			if applied {
				wantLaunch = t0 // the second call found it pending and left it
			}
			if d := h.instance(idTools); !d.LaunchTime.Equal(wantLaunch) || d.State != switchboard.StateRunning {
				t.Errorf("tools is %s, launched at %v; want running, launched at %v", d.State, d.LaunchTime, wantLaunch)
			}
		})
	}
}

// The checkpoint comes before the side effect: when it cannot be written,
// nothing is done.
func TestCheckpointFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleet(), nil)
	h.saver.err = errors.New("database is locked")
	run := h.run("start tools")
	if _, err := h.advance(run); err == nil || !strings.Contains(err.Error(), "database is locked") {
		t.Fatalf("Advance error = %v, want the save's", err)
	}
	if n := h.calls("StartInstances"); n != 0 {
		t.Errorf("StartInstances called %d times without a checkpoint", n)
	}
	if run.State.Finished() {
		t.Errorf("run is %s, want it undecided", run.State)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	t.Run("start", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, fleet(), func(o *sim.Options) { o.PendingDuration = time.Hour })
		h.runner.Steps = switchboard.NewRegistry(steps.InstancesWithin(10*time.Second, 10*time.Minute))
		run := h.run("start tools")
		got := texts(h.finish(run))
		want := "tools (i-0123456789abcdef0) is still pending after 10s; check it with `/ec2 status i-0123456789abcdef0`."
		if len(got) != 1 || got[0] != want {
			t.Errorf("answers = %q\nwant [%q]", got, want)
		}
		if run.State != switchboard.RunFailed || run.Error != want {
			t.Errorf("run is %s with error %q", run.State, run.Error)
		}
		if h.clock.Now().Sub(t0) > time.Minute {
			t.Errorf("the run gave up after %v, want about 10s", h.clock.Now().Sub(t0))
		}
	})
	t.Run("stop", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, withTools(switchboard.StateRunning), func(o *sim.Options) { o.StoppingDuration = time.Hour })
		h.runner.Steps = switchboard.NewRegistry(steps.InstancesWithin(5*time.Minute, 15*time.Second))
		run := h.run("stop tools")
		got := texts(h.finish(run))
		want := "tools (i-0123456789abcdef0) is still stopping after 15s; check it with `/ec2 status i-0123456789abcdef0`."
		if len(got) != 1 || got[0] != want || run.State != switchboard.RunFailed {
			t.Errorf("run is %s, answers = %q\nwant [%q]", run.State, got, want)
		}
	})
}

func TestBrokenRuns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*switchboard.Run)
		want   string
	}{
		{
			name:   "unknown step",
			change: func(r *switchboard.Run) { r.Plan[0].Kind = "teleport" },
			want:   `has a step of unknown kind "teleport"; it was stopped there.`,
		},
		{
			name:   "cloud gone",
			change: func(r *switchboard.Run) { r.Cloud = "old" },
			want:   `The cloud "old" is not configured any more; nothing was done.`,
		},
		{
			name:   "unknown phase",
			change: func(r *switchboard.Run) { r.Scratch = json.RawMessage(`{"phase":"dancing"}`) },
			want:   `is in an unknown phase "dancing"; nothing more was done.`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, fleet(), nil)
			run := h.run("start tools")
			tt.change(run)
			out, err := h.advance(run)
			if err != nil {
				t.Fatal(err)
			}
			if got := texts(out.Messages); len(got) != 1 || !strings.HasSuffix(got[0], tt.want) {
				t.Errorf("answers = %q, want one ending %q", got, tt.want)
			}
			if run.State != switchboard.RunFailed {
				t.Errorf("run is %s, want failed", run.State)
			}
			if n := h.calls("StartInstances"); n != 0 {
				t.Errorf("StartInstances called %d times", n)
			}
		})
	}
}

// An instance terminated while the run waits for it settles the run at once,
// and the answer says what happened rather than blaming a timeout.
func TestTerminatedWhileWaiting(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleet(), func(o *sim.Options) { o.ShuttingDownDuration = sim.Instant })
	run := h.run("start tools")
	if _, err := h.advance(run); err != nil {
		t.Fatal(err)
	}
	if _, err := h.cloud.TerminateInstances(context.Background(), []string{idTools}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(poll)
	out, err := h.advance(run)
	if err != nil {
		t.Fatal(err)
	}
	got := texts(out.Messages)
	if len(got) != 1 || !strings.Contains(got[0], "terminated") || strings.Contains(got[0], "after 5m0s") {
		t.Errorf("answers = %q; want one saying tools was terminated, without a timeout", got)
	}
	if run.State != switchboard.RunFailed {
		t.Errorf("run is %s, want failed", run.State)
	}
}

// A cloud that never comes back ends a built-in command at the deadline,
// with the cloud named and the reason, not after the job queue's attempts.
func TestCloudNeverBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleet(), nil)
	h.runner.RetryFor = 2 * time.Minute
	h.cloud.InjectFault(sim.Fault{Action: "DescribeInstances"})
	run := h.run("start tools")
	start := h.clock.Now()
	got := texts(h.finish(run))
	if len(got) != 2 || got[0] != "The cloud main is not answering; I'll keep trying until "+start.Add(2*time.Minute).UTC().Format("15:04 UTC")+"." ||
		!strings.HasPrefix(got[1], "The cloud main did not answer for 2 minutes, so I gave up: The cloud answered InternalError") {
		t.Errorf("said %q", got)
	}
	if took := h.clock.Now().Sub(start); run.State != switchboard.RunFailed || took < 2*time.Minute || took > 3*time.Minute {
		t.Errorf("run %s after %s", run.State, took)
	}
	if run.Error != got[len(got)-1] {
		t.Errorf("run error %q", run.Error)
	}
}
