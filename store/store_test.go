package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/engine"
	"github.com/switchboardhq/switchboard/sim"
	"github.com/switchboardhq/switchboard/steps"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// backends runs a test against every store: SQLite, and a real Postgres
// started for the test binary.
var backends = store.Backends

var ec2 = switchboard.CommandSpec{
	Name:   "/ec2",
	Cloud:  "main",
	Access: switchboard.Access{Users: []string{"U0OPS1"}},
	Instances: []switchboard.TargetSpec{
		{Alias: "tools", ID: "i-0123456789abcdef0", ElasticIP: "107.20.248.29"},
		{Alias: "web", Tags: map[string]string{"role": "web"}},
	},
	Actions: switchboard.AllActions,
}

func fleet() []switchboard.Instance {
	return []switchboard.Instance{
		{ID: "i-0123456789abcdef0", Name: "tools", State: switchboard.StateStopped, Tags: map[string]string{"env": "dev"}},
		{ID: "i-0fedcba9876543210", Name: "web-1", State: switchboard.StateRunning, Tags: map[string]string{"role": "web"}},
	}
}

// recorder is a Messenger that records what a chat platform would have
// been sent.
type recorder struct {
	mu   sync.Mutex
	sent []switchboard.Message
	fail int // fail this many posts with EUNAVAILABLE first
}

func (r *recorder) Deliver(_ context.Context, m switchboard.Message, _ []string) (switchboard.Delivery, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return switchboard.Delivery{}, switchboard.Errorf(switchboard.EUNAVAILABLE, "slack is down")
	}
	r.sent = append(r.sent, m)
	return switchboard.Delivery{Via: "recorder"}, nil
}

func (r *recorder) texts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.sent {
		out = append(out, m.Text)
	}
	return out
}

type bundle struct {
	store    *store.Store
	commands *engine.Commands
	cloud    *sim.Cloud
	slack    *recorder
}

func setup(t *testing.T, url string) *bundle {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	cloud := sim.New(sim.Options{Instances: fleet(), PendingDuration: sim.Instant, StoppingDuration: sim.Instant})
	b := &bundle{store: s, cloud: cloud, slack: &recorder{},
		commands: &engine.Commands{Specs: []switchboard.CommandSpec{ec2}, Runs: s}}
	runner := &engine.Runner{Steps: switchboard.NewRegistry(steps.Builtin()...), Providers: map[string]switchboard.Provider{"main": cloud}, Locks: s, PollInterval: 20 * time.Millisecond}
	if err := s.Start(ctx, store.Work{Advancer: runner, Messenger: b.slack}); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Stop(stopCtx)
		s.Close()
	})
	return b
}

// waitFor polls until cond holds; it fails the test after a generous bound
// that only a hang would reach.
var waitFor = store.WaitFor

func consoleRequest(text string) switchboard.Request {
	return switchboard.Request{Source: "console", Command: "/ec2", Text: text, UserID: "U0OPS1", ChannelID: "C0OPS"}
}

func answers(t *testing.T, s *store.Store, channel string) []string {
	t.Helper()
	lines, err := s.Transcript(context.Background(), channel, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range lines {
		if l.Kind == "answer" {
			out = append(out, l.Text)
		}
	}
	return out
}

func TestStartReportsAddress(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		b := setup(t, url)
		ctx := context.Background()
		ack, err := b.commands.HandleCommand(ctx, consoleRequest("start tools"))
		if err != nil {
			t.Fatal(err)
		}
		if want := "Checking tools (i-0123456789abcdef0) to start what is stopped — I'll report back here."; ack.Text != want {
			t.Errorf("ack = %q, want %q", ack.Text, want)
		}
		waitFor(t, "the answer", func() bool { return len(answers(t, b.store, "C0OPS")) > 0 })
		got := answers(t, b.store, "C0OPS")
		if want := "tools (i-0123456789abcdef0) is now running at 107.20.248.29."; len(got) != 1 || got[0] != want {
			t.Errorf("answers = %q, want [%q]", got, want)
		}
		run, err := b.store.GetRun(ctx, ack.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if run.State != switchboard.RunSucceeded {
			t.Errorf("run state = %s, want succeeded", run.State)
		}
		inst, _ := b.cloud.Instance("i-0123456789abcdef0")
		if inst.State != switchboard.StateRunning || inst.PublicIP != "107.20.248.29" {
			t.Errorf("instance = %s at %s, want running at 107.20.248.29", inst.State, inst.PublicIP)
		}

		// Again: it is already running.
		if _, err := b.commands.HandleCommand(ctx, consoleRequest("start tools")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the second answer", func() bool { return len(answers(t, b.store, "C0OPS")) > 1 })
		if got := answers(t, b.store, "C0OPS")[1]; got != "tools (i-0123456789abcdef0) is already running at 107.20.248.29." {
			t.Errorf("second answer = %q", got)
		}
	})
}

func TestSlackMessagesRetriedAndSentOnce(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		b := setup(t, url)
		b.slack.fail = 2
		req := consoleRequest("status")
		req.Source, req.ResponseURL, req.DeliveryID = "slack", "http://127.0.0.1:1/resp", "trigger-1"
		ack, err := b.commands.HandleCommand(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		// The same delivery again starts nothing new.
		again, err := b.commands.HandleCommand(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if again.RunID != ack.RunID {
			t.Errorf("repeated delivery made run %s, want the first run %s", again.RunID, ack.RunID)
		}
		waitFor(t, "slack post", func() bool { return len(b.slack.texts()) > 0 })
		runs, err := b.store.ListRuns(context.Background(), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 1 {
			t.Errorf("runs = %d, want 1", len(runs))
		}
		got := b.slack.texts()
		if len(got) != 1 || !strings.Contains(got[0], "tools (i-0123456789abcdef0) is stopped.") || !strings.Contains(got[0], "web-1 (i-0fedcba9876543210) is running") {
			t.Errorf("slack got %q", got)
		}
	})
}

func TestLocksKeepRunsApart(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		s, err := store.Open(context.Background(), url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		for _, id := range []string{"r-a", "r-b"} {
			run := &switchboard.Run{ID: id, Workflow: "t", State: switchboard.RunRunning, CreatedAt: time.Now(), UpdatedAt: time.Now()}
			if _, err := s.CreateRun(ctx, run, nil); err != nil {
				t.Fatal(err)
			}
		}
		if holder, err := s.LockInstances(ctx, "r-a", []string{"main/i-1", "main/i-2"}); err != nil || holder != "" {
			t.Fatalf("a: holder=%q err=%v", holder, err)
		}
		if holder, err := s.LockInstances(ctx, "r-b", []string{"main/i-3", "main/i-2"}); err != nil || holder != "r-a" {
			t.Fatalf("b: holder=%q err=%v, want r-a", holder, err)
		}
		// All or nothing: b did not keep i-3.
		if holder, err := s.LockInstances(ctx, "r-c", []string{"main/i-3"}); err != nil || holder != "" {
			t.Fatalf("c: holder=%q err=%v", holder, err)
		}
		a, _ := s.GetRun(ctx, "r-a")
		a.State = switchboard.RunSucceeded
		if err := s.SaveRun(ctx, a); err != nil {
			t.Fatal(err)
		}
		if holder, err := s.LockInstances(ctx, "r-b", []string{"main/i-2"}); err != nil || holder != "" {
			t.Fatalf("b after a finished: holder=%q err=%v", holder, err)
		}
		first, err := s.FirstDelivery(ctx, "slack:Ev1")
		if err != nil || !first {
			t.Fatalf("first delivery = %v, %v", first, err)
		}
		if again, _ := s.FirstDelivery(ctx, "slack:Ev1"); again {
			t.Error("second delivery of Ev1 reported as first")
		}
	})
}

func TestRunResumesAfterRestart(t *testing.T) {
	t.Parallel()
	url := "sqlite://" + filepath.Join(t.TempDir(), "sb.db")
	ctx := context.Background()
	// A process that acks and dies before working the run.
	s, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cmds := &engine.Commands{Specs: []switchboard.CommandSpec{ec2}, Runs: s}
	if _, err := cmds.HandleCommand(ctx, consoleRequest("start tools")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	b := setup(t, url)
	waitFor(t, "the answer after restart", func() bool { return len(answers(t, b.store, "C0OPS")) > 0 })
	if got := answers(t, b.store, "C0OPS"); len(got) != 1 || !strings.Contains(got[0], "is now running") {
		t.Errorf("answers = %q", got)
	}
}

// parkOnce parks a run for an hour the first time, then finishes it.
type parkOnce struct {
	mu    sync.Mutex
	calls int
}

func (p *parkOnce) Advance(_ context.Context, run *switchboard.Run, _ switchboard.RunSaver) (switchboard.Outcome, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.calls == 1 {
		run.State = switchboard.RunWaiting
		return switchboard.Outcome{Wait: time.Hour}, nil
	}
	run.State = switchboard.RunSucceeded
	return switchboard.Outcome{}, nil
}

func (p *parkOnce) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// A run parked for an hour is worked again at once when woken (an approval
// it waits for was decided).
func TestWakeRun(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s, err := store.Open(ctx, url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		parker := &parkOnce{}
		if err := s.Start(ctx, store.Work{Advancer: parker}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = s.Stop(stopCtx)
			s.Close()
		})
		run := &switchboard.Run{ID: "r-wake", Workflow: "t", State: switchboard.RunQueued, CreatedAt: time.Now(), UpdatedAt: time.Now()}
		if _, err := s.CreateRun(ctx, run, nil); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the run to park", func() bool {
			r, err := s.GetRun(ctx, "r-wake")
			return err == nil && parker.count() == 1 && r.State == switchboard.RunWaiting
		})
		// A wake before the worker has snoozed the job finds nothing to
		// wake (the run's own re-check covers that case), so keep waking
		// until it lands; without WakeRun the run would sleep an hour.
		waitFor(t, "the woken run to finish", func() bool {
			if err := s.WakeRun(ctx, "r-wake"); err != nil {
				t.Fatal(err)
			}
			r, err := s.GetRun(ctx, "r-wake")
			return err == nil && r.State == switchboard.RunSucceeded
		})
		if err := s.WakeRun(ctx, "r-nobody"); err != nil {
			t.Fatalf("wake an unknown run: %v", err)
		}
	})
}

// The inventory keeps what was last seen of an instance, and a terminated
// instance keeps the addresses and name it had.
func TestInventory(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		s, err := store.Open(context.Background(), url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		web := switchboard.Instance{ID: "i-0123456789abcdef0", Name: "web-7", State: switchboard.StateRunning, PublicIP: "203.0.113.7",
			PrivateIP: "10.0.0.7", PrivateDNS: "ip-10-0-0-7.ec2.internal", Tags: map[string]string{"Name": "web-7"}}
		s.Remember("main", []switchboard.Instance{web})
		if got, ok, err := s.Recall(ctx, "main", web.ID); err != nil || !ok || got.PublicIP != web.PublicIP {
			t.Fatalf("recall before the write = %+v, %v, %v", got, ok, err)
		}
		s.Remember("main", []switchboard.Instance{{ID: web.ID, State: switchboard.StateTerminated}})
		s.Close() // writes what is pending
		s, err = store.Open(ctx, url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, ok, err := s.Recall(ctx, "main", web.ID)
		if err != nil || !ok || got.State != switchboard.StateTerminated || got.PrivateIP != "10.0.0.7" || got.Name != "web-7" || got.PrivateDNS == "" {
			t.Errorf("recall after termination = %+v, %v, %v", got, ok, err)
		}
		if _, ok, _ := s.Recall(ctx, "other", web.ID); ok {
			t.Errorf("recalled an instance of another cloud")
		}
	})
}

// A NUL byte or invalid UTF-8 in command text is refused with a sentence,
// and the refusal is audited on both stores (Postgres stores neither).
func TestUnreadableCommandTextIsRefusedAndAudited(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		b := setup(t, url)
		for _, text := range []string{"start tools\x00", "start \xff\xfe"} {
			_, err := b.commands.HandleCommand(context.Background(), consoleRequest(text))
			if switchboard.ErrorCode(err) != switchboard.EINVALID || !strings.Contains(switchboard.ErrorMessage(err), "cannot read") {
				t.Errorf("%q: %v, want the sentence", text, err)
			}
		}
		lines, err := b.store.ListAudit(context.Background(), switchboard.AuditQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		refused := 0
		for _, l := range lines {
			if l.Outcome == "refused" && l.Detail == "unreadable text" && utf8.ValidString(l.Subject) && !strings.ContainsRune(l.Subject, 0) {
				refused++
			}
		}
		if refused != 2 {
			t.Errorf("%d refusals audited, want 2: %+v", refused, lines)
		}
	})
}

// The audit log reads newest first and narrows by actor, kind, outcome and
// run (a run id's beginning is enough, as the console shows ids shortened).
func TestListAuditFilters(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := setup(t, url).store
		at := time.Now().Add(-time.Minute)
		for i, ev := range []switchboard.AuditEvent{
			{Kind: "request", Actor: "U0OPS1", Subject: "/ec2 start tools", Outcome: "allowed", RunID: "run_abc_1"},
			{Kind: "action", Actor: "U0OPS1", Subject: "start i-1", Outcome: "ok", RunID: "run_abc_1"},
			{Kind: "request", Actor: "U0OTHER", Subject: "/ec2 stop tools", Outcome: "refused"},
			{Kind: "request", Actor: "U0OPS2", Subject: "/ec2 stop web", Outcome: "allowed", RunID: "run_xyz_2"},
		} {
			ev.Time = at.Add(time.Duration(i) * time.Second)
			if err := s.Audit(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		subjects := func(q switchboard.AuditQuery) []string {
			t.Helper()
			evs, err := s.ListAudit(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, ev := range evs {
				out = append(out, ev.Subject)
			}
			return out
		}
		for _, c := range []struct {
			name string
			q    switchboard.AuditQuery
			want string
		}{
			{"all, newest first", switchboard.AuditQuery{}, "/ec2 stop web|/ec2 stop tools|start i-1|/ec2 start tools"},
			{"limit keeps the newest", switchboard.AuditQuery{Limit: 2}, "/ec2 stop web|/ec2 stop tools"},
			{"actor", switchboard.AuditQuery{Actor: "U0OPS1"}, "start i-1|/ec2 start tools"},
			{"kind and outcome", switchboard.AuditQuery{Kind: "request", Outcome: "allowed"}, "/ec2 stop web|/ec2 start tools"},
			{"run prefix", switchboard.AuditQuery{RunID: "run_abc"}, "start i-1|/ec2 start tools"},
			{"run prefix is not a pattern", switchboard.AuditQuery{RunID: "run_%"}, ""},
			{"since", switchboard.AuditQuery{Since: at.Add(2500 * time.Millisecond)}, "/ec2 stop web"},
		} {
			if got := strings.Join(subjects(c.q), "|"); got != c.want {
				t.Errorf("%s: got %q, want %q", c.name, got, c.want)
			}
		}
	})
}
