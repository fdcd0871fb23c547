package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/testenv"
)

// stepper is an Advancer whose runs take the steps it is given for their
// id: each step says one message, waits or fails, the last one finishes the
// run.
type stepper struct {
	mu    sync.Mutex
	steps map[string][]fakeStep
	calls map[string]int
	// block, when set, holds every Advance until it is closed or ctx ends.
	block chan struct{}
}

type fakeStep struct {
	say  string
	wait time.Duration
	err  error
}

func (a *stepper) Advance(ctx context.Context, run *switchboard.Run, _ switchboard.RunSaver) (switchboard.Outcome, error) {
	if a.block != nil {
		select {
		case <-a.block:
		case <-ctx.Done():
			return switchboard.Outcome{}, ctx.Err()
		}
	}
	a.mu.Lock()
	i := a.calls[run.ID]
	a.calls[run.ID]++
	a.mu.Unlock()
	steps := a.steps[run.ID]
	st := steps[min(i, len(steps)-1)]
	if st.err != nil {
		return switchboard.Outcome{}, st.err
	}
	out := switchboard.Outcome{Wait: st.wait}
	if st.say != "" {
		out.Messages = []switchboard.Message{{RunID: run.ID, Key: fmt.Sprint("m", i), Source: "test", ChannelID: "C0OPS", Text: st.say}}
	}
	if i >= len(steps)-1 {
		run.State, run.FinishedAt = switchboard.RunSucceeded, time.Now()
	}
	return out, nil
}

// flaky records posts and fails the first few with EUNAVAILABLE.
type flaky struct {
	mu   sync.Mutex
	sent []string
	fail int
}

func (f *flaky) Deliver(_ context.Context, m switchboard.Message, _ []string) (switchboard.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return switchboard.Delivery{}, switchboard.Errorf(switchboard.EUNAVAILABLE, "slack is down")
	}
	f.sent = append(f.sent, m.Text)
	return switchboard.Delivery{Via: "test"}, nil
}

func (f *flaky) texts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sent...)
}

// eachStore runs a test against every store: SQLite, and a real Postgres
// started for the test binary.
func eachStore(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, "sqlite://"+filepath.Join(t.TempDir(), "sb.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, testenv.Postgres(t))
	})
}

func startStore(t *testing.T, url string, adv switchboard.Advancer, m switchboard.Messenger) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, url, Options{ClientID: "test-" + t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, Work{Advancer: adv, Messenger: m}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
		s.Close()
	})
	return s
}

func newRun(id string) *switchboard.Run {
	now := time.Now()
	return &switchboard.Run{ID: id, Workflow: "test", State: switchboard.RunRunning, CreatedAt: now, UpdatedAt: now,
		Request: switchboard.Request{Source: "test", ChannelID: "C0OPS", UserID: "U0OPS1"}}
}

type jobRow struct {
	kind, state string
	attempt     int
}

// jobsOf lists the jobs of a run: its own, then its messages' oldest first.
func jobsOf(t *testing.T, s *Store, runID string) []jobRow {
	t.Helper()
	query := `SELECT kind, state, attempt FROM river_job WHERE json_extract(args, '$.run_id') = ? ORDER BY kind DESC, id`
	if s.postgres {
		query = `SELECT kind, state, attempt FROM river_job WHERE args->>'run_id' = $1 ORDER BY kind DESC, id`
	}
	rows, err := s.db.Query(query, runID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []jobRow
	for rows.Next() {
		var j jobRow
		if err := rows.Scan(&j.kind, &j.state, &j.attempt); err != nil {
			t.Fatal(err)
		}
		out = append(out, j)
	}
	return out
}

// unqueued says whether a run is marked as worked by this process with no
// job row (SQLite's fast path).
func unqueued(t *testing.T, s *Store, runID string) bool {
	t.Helper()
	var n int
	if err := s.db.QueryRow(s.q(`SELECT unqueued FROM sb_runs WHERE id = ?`), runID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// waitUntil polls until cond holds; it fails the test after a generous
// bound that only a hang would reach.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A run created while the process has a free worker is worked here at once:
// its job holds its answer until the answer is posted (once) and ends after
// one attempt. On Postgres the job is written taken by this process and
// ends completed; on SQLite it is never written: the run is marked
// unqueued until it ends.
func TestFastPathWorksNewRunsAtOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		adv := &stepper{steps: map[string][]fakeStep{"r-fast": {{say: "tools is running."}}}, calls: map[string]int{}}
		slack := &flaky{}
		s := startStore(t, url, adv, slack)
		if _, err := s.CreateRun(context.Background(), newRun("r-fast"), nil); err != nil {
			t.Fatal(err)
		}
		// The answer has no job of its own: the run's job held it until it
		// was delivered.
		want := []jobRow{{"run", "completed", 1}}
		if !s.postgres {
			want = nil
		}
		waitUntil(t, "the run's job ended", func() bool {
			return len(slack.texts()) > 0 && fmt.Sprint(jobsOf(t, s, "r-fast")) == fmt.Sprint(want) && !unqueued(t, s, "r-fast")
		})
		if got := slack.texts(); len(got) != 1 || got[0] != "tools is running." {
			t.Errorf("posted %q, want the one answer once", got)
		}
		var via string
		var sent, created, sending int64
		if err := s.db.QueryRow(s.q(`SELECT via, sent_at, created_at, sending_at FROM sb_messages WHERE run_id = ?`), "r-fast").Scan(&via, &sent, &created, &sending); err != nil {
			t.Fatal(err)
		}
		if via != "test" || sent <= 0 {
			t.Errorf("message recorded via %q sent_at %d, want delivered via test", via, sent)
		}
		// Posted by the process that wrote it, straight after: the intent
		// to post went in with the message (a queued message's intent is
		// written when a worker begins the post).
		if sending != created {
			t.Errorf("intent to post written at %d, the message at %d: not posted straight from the step's commit", sending, created)
		}
	})
}

// What the fast path cannot finish goes to River as River would have left
// it: a failed post is retried by River's worker, a run that parks is
// advanced again by River, a run whose step fails transiently is retried.
func TestFastPathHandsTheRestToRiver(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		adv := &stepper{steps: map[string][]fakeStep{
			"r-park":  {{say: "checking", wait: 50 * time.Millisecond}, {say: "done"}},
			"r-retry": {{err: errors.New("store hiccup")}, {say: "recovered"}},
		}, calls: map[string]int{}}
		slack := &flaky{fail: 1}
		s := startStore(t, url, adv, slack)
		if _, err := s.CreateRun(context.Background(), newRun("r-park"), nil); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "both messages posted", func() bool { return len(slack.texts()) == 2 })
		waitUntil(t, "every job completed", func() bool {
			for _, j := range jobsOf(t, s, "r-park") {
				if j.state != "completed" {
					return false
				}
			}
			return true
		})
		if got := fmt.Sprint(slack.texts()); got != "[checking done]" {
			t.Errorf("posted %s, want [checking done] in order, once each", got)
		}
		// The first message failed once on the fast path: it was given a job,
		// and the second one behind it, and River's message worker posted
		// them in order.
		// The run itself finished here (its short wait waited in place):
		// on SQLite its job was never written.
		want := []jobRow{{"run", "completed", 1}, {"message", "completed", 1}, {"message", "completed", 1}}
		if !s.postgres {
			want = want[1:]
		}
		if jobs := jobsOf(t, s, "r-park"); fmt.Sprint(jobs) != fmt.Sprint(want) {
			t.Errorf("jobs %v, want %v", jobs, want)
		}

		if _, err := s.CreateRun(context.Background(), newRun("r-retry"), nil); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the retried run's answer", func() bool { return len(slack.texts()) == 3 })
		waitUntil(t, "the retried run's job completed at attempt 2", func() bool {
			jobs := jobsOf(t, s, "r-retry")
			return len(jobs) == 2 && jobs[0] == (jobRow{"run", "completed", 2})
		})
	})
}

// A run parked for a long re-check (an approval) that is woken continues at
// once, taken by the process that woke it, not at its re-check.
func TestWokenRunContinuesAtOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, url string) {
		adv := &stepper{steps: map[string][]fakeStep{"r-wake": {{say: "approve?", wait: 10 * time.Minute}, {say: "approved"}}}, calls: map[string]int{}}
		slack := &flaky{}
		s := startStore(t, url, adv, slack)
		if _, err := s.CreateRun(context.Background(), newRun("r-wake"), nil); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the question", func() bool { return len(slack.texts()) == 1 })
		waitUntil(t, "the run parked", func() bool {
			jobs := jobsOf(t, s, "r-wake")
			return len(jobs) == 1 && jobs[0].state == "scheduled"
		})
		if err := s.WakeRun(context.Background(), "r-wake"); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the answer after the wake", func() bool { return len(slack.texts()) == 2 })
		waitUntil(t, "the run's job completed", func() bool {
			jobs := jobsOf(t, s, "r-wake")
			return len(jobs) == 1 && jobs[0].state == "completed"
		})
	})
}

// A process that stops while a run is on the fast path leaves the run
// marked unqueued; the next start gives it a job and finishes it.
func TestFastPathRunCutOffIsFinishedAfterRestart(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "sb.db")
	ctx := context.Background()
	adv := &stepper{steps: map[string][]fakeStep{"r-cut": {{say: "finished"}}}, calls: map[string]int{}, block: make(chan struct{})}
	slack := &flaky{}
	s, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, Work{Advancer: adv, Messenger: slack}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRun(ctx, newRun("r-cut"), nil); err != nil {
		t.Fatal(err)
	}
	if got := jobsOf(t, s, "r-cut"); len(got) > 0 || !unqueued(t, s, "r-cut") {
		t.Fatalf("jobs %v, unqueued %v: want none, the run marked as worked here", got, unqueued(t, s, "r-cut"))
	}
	stopCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_ = s.Stop(stopCtx) // out of drain time: the run is cut off
	cancel()
	s.Close()
	if len(slack.texts()) != 0 {
		t.Fatalf("posted %q before the restart", slack.texts())
	}

	adv.block = nil
	s2 := startStore(t, url, adv, slack)
	waitUntil(t, "the answer after the restart", func() bool { return len(slack.texts()) == 1 })
	waitUntil(t, "the run's job completed", func() bool {
		jobs := jobsOf(t, s2, "r-cut")
		return len(jobs) == 2 && jobs[0].state == "completed"
	})
}

// stalled is a Messenger whose posts hang until the process stops.
type stalled struct{ began chan struct{} }

func (m stalled) Deliver(ctx context.Context, _ switchboard.Message, _ []string) (switchboard.Delivery, error) {
	close(m.began)
	<-ctx.Done()
	return switchboard.Delivery{}, ctx.Err()
}

// An answer held by its run's job when the process stops before posting it
// is posted once after the next start: the recovered run job gives it a job
// of its own.
func TestHeldAnswerCutOffIsPostedAfterRestart(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "sb.db")
	ctx := context.Background()
	adv := &stepper{steps: map[string][]fakeStep{"r-held": {{say: "tools is running."}}}, calls: map[string]int{}}
	s, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	hang := stalled{began: make(chan struct{})}
	if err := s.Start(ctx, Work{Advancer: adv, Messenger: hang}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRun(ctx, newRun("r-held"), nil); err != nil {
		t.Fatal(err)
	}
	<-hang.began
	stopCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_ = s.Stop(stopCtx) // out of drain time: the post is cut off
	cancel()
	if got := jobsOf(t, s, "r-held"); len(got) > 0 || !unqueued(t, s, "r-held") {
		t.Errorf("jobs %v, unqueued %v after the stop: want none, the run still marked, holding the answer", got, unqueued(t, s, "r-held"))
	}
	s.Close()

	slack := &flaky{}
	s2 := startStore(t, url, adv, slack)
	waitUntil(t, "the answer after the restart", func() bool { return len(slack.texts()) == 1 })
	waitUntil(t, "the run's and the answer's jobs completed", func() bool {
		jobs := jobsOf(t, s2, "r-held")
		return len(jobs) == 2 && jobs[0].state == "completed" && jobs[1].state == "completed"
	})
	time.Sleep(200 * time.Millisecond)
	if got := slack.texts(); len(got) != 1 {
		t.Errorf("posted %q, want the answer once", got)
	}
}

// Concurrent write transactions share commits, and one that fails is
// rolled back alone.
func TestGroupCommitRollsBackOnlyTheOneThatFailed(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "sb.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// write runs n transactions at once, each inserting one audit line
	// (subject "PREFIX i"); those for which fail(i) then fail.
	write := func(prefix string, n int, fail func(int) bool) []error {
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.inTx(ctx, s.req, func(tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, `INSERT INTO sb_audit (at, kind, subject) VALUES (?, 'request', ?)`, i, fmt.Sprint(prefix, " ", i)); err != nil {
						return err
					}
					if fail(i) {
						return errors.New("changed my mind")
					}
					return nil
				})
			}()
		}
		wg.Wait()
		return errs
	}
	count := func(where string) int {
		var n int
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM sb_audit WHERE ` + where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	before := s.sqlCounts.Commits.Load()
	for i, err := range write("ok", 200, func(int) bool { return false }) {
		if err != nil {
			t.Errorf("transaction %d: %v", i, err)
		}
	}
	commits := s.sqlCounts.Commits.Load() - before
	t.Logf("200 concurrent transactions in %d commits", commits)
	if n := count(`subject LIKE 'ok %'`); n != 200 || commits >= 200 {
		t.Errorf("%d lines in %d commits, want 200 in fewer commits: none shared one", n, commits)
	}

	for i, err := range write("mixed", 200, func(i int) bool { return i%10 == 3 }) {
		if (i%10 == 3) != (err != nil) {
			t.Errorf("transaction %d: %v", i, err)
		}
	}
	kept, rolledBack := count(`subject LIKE 'mixed %' AND at % 10 <> 3`), count(`subject LIKE 'mixed %' AND at % 10 = 3`)
	if kept != 180 || rolledBack != 0 {
		t.Errorf("%d committed and %d of the failed ones kept, want 180 and 0", kept, rolledBack)
	}
}

// asRead gives the fast path the run as GetRun would read it back: a
// command's request copied (it holds only strings and a time), an event's
// and every plan decoded.
func TestAsReadIsTheRunAsReadBack(t *testing.T) {
	for i := range reflect.TypeFor[switchboard.Request]().NumField() {
		f := reflect.TypeFor[switchboard.Request]().Field(i)
		if f.Type.Kind() != reflect.String && f.Type != reflect.TypeFor[time.Time]() && f.Name != "Event" {
			t.Errorf("Request.%s is a %s: asRead copies a command's request, so it must hold only strings and a time", f.Name, f.Type)
		}
	}
	zone := time.FixedZone("X", 5*3600)
	for _, req := range []switchboard.Request{
		{Source: "slack", Command: "/ec2", Text: "status tools", UserID: "U1", ChannelID: "C1", ResponseURL: "https://x/1", ReceivedAt: time.Now()},
		{Source: "slack", Command: "/ec2", ReceivedAt: time.Now().In(zone)},
		{Source: "aws", ReceivedAt: time.Now().UTC(), Event: &switchboard.Event{Source: "aws", DeliveryID: "e1", Kind: "k", Data: []byte(`{"a":1}`)}},
	} {
		run := &switchboard.Run{ID: "r-1", Workflow: "w", State: switchboard.RunRunning, CreatedAt: time.Now(), UpdatedAt: time.Now(), Request: req,
			Plan: []switchboard.Step{{Kind: "instances", With: json.RawMessage(`{"targets": ["a"], "n": 3}`)}}}
		reqJSON, _ := json.Marshal(run.Request)
		planJSON, _ := json.Marshal(run.Plan)
		want := &switchboard.Run{ID: run.ID, Workflow: run.Workflow, State: run.State,
			CreatedAt: time.Unix(0, run.CreatedAt.UnixNano()), UpdatedAt: time.Unix(0, run.UpdatedAt.UnixNano())}
		if err := json.Unmarshal(reqJSON, &want.Request); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(planJSON, &want.Plan); err != nil {
			t.Fatal(err)
		}
		if got := asRead(run, reqJSON, planJSON); !reflect.DeepEqual(got, want) {
			t.Errorf("asRead gave\n%#v\nwant, as read back,\n%#v", got, want)
		}
	}
}
