package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/testenv"
)

// What is older than the retention goes, in batches, on SQLite and on
// Postgres; what is newer, unfinished, or still to be delivered stays.
func TestPrune(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "sb.db") },
		"postgres": func(t *testing.T) string { return testenv.Postgres(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, err := Open(ctx, url(t), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
			ago := func(days int) int64 { return now.Add(-time.Duration(days) * 24 * time.Hour).UnixNano() }
			exec := func(tx *sql.Tx, query string, args ...any) {
				t.Helper()
				if _, err := tx.ExecContext(ctx, s.q(query), args...); err != nil {
					t.Fatalf("%s: %v", query, err)
				}
			}
			err = s.inTx(ctx, s.db, func(tx *sql.Tx) error {
				// 2,500 audit lines of 100 days ago (three batches), one of yesterday.
				for i := range 2500 {
					exec(tx, `INSERT INTO sb_audit (at, kind, subject) VALUES (?, 'request', ?)`, ago(100), fmt.Sprint("old ", i))
				}
				exec(tx, `INSERT INTO sb_audit (at, kind, subject) VALUES (?, 'request', 'new')`, ago(1))
				run := func(id, state string, finished int64, sent int64) {
					exec(tx, `INSERT INTO sb_runs (id, workflow, state, request, plan, created_at, updated_at, finished_at) VALUES (?, 'ec2.start', ?, '{}', '[]', ?, ?, ?)`,
						id, state, ago(45), ago(45), finished)
					exec(tx, `INSERT INTO sb_messages (run_id, msg_key, body, created_at, sent_at) VALUES (?, 'answer', '{}', ?, ?)`, id, ago(45), sent)
					exec(tx, `INSERT INTO sb_approvals (id, run_id, state, body, created_at) VALUES (?, ?, 'approved', '{}', ?)`, id+"-policy", id, ago(45))
					exec(tx, `INSERT INTO sb_transcript (at, run_id, channel_id, kind, body) VALUES (?, ?, 'C0OPS', 'answer', 'x')`, finishedOr(finished, ago(45)), id)
				}
				run("r-old", "succeeded", ago(40), ago(40))
				run("r-old-failed", "failed", ago(40), -1) // its message was given up on
				run("r-old-unsent", "failed", ago(40), 0)  // its message is still on its way
				run("r-waiting", "waiting", 0, ago(40))    // not finished
				run("r-new", "succeeded", ago(2), ago(2))  // finished recently
				inst := func(id string, seen, settled int64) {
					exec(tx, `INSERT INTO sb_instances (cloud, id, body, seen_at, settled_at) VALUES ('main', ?, '{}', ?, ?)`, id, seen, settled)
				}
				inst("i-gone", ago(50), ago(40))         // terminated and cleaned up long ago
				inst("i-seen-again", ago(1), ago(40))    // seen since
				inst("i-unsettled", ago(50), 0)          // never cleaned up
				inst("i-settled-lately", ago(5), ago(3)) // cleaned up recently
				exec(tx, `INSERT INTO sb_deliveries (delivery_key, seen_at) VALUES ('slack/event/old', ?), ('slack/event/new', ?)`, ago(8), ago(1))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}

			const day = 24 * time.Hour
			r := Retention{Audit: 90 * day, Runs: 30 * day, Deliveries: 7 * day}
			pruned, err := s.Prune(ctx, r, now)
			if err != nil {
				t.Fatal(err)
			}
			if want := (Pruned{Audit: 2500, Runs: 2, Transcript: 4, Instances: 1, Deliveries: 1}); pruned != want {
				t.Errorf("pruned %+v, want %+v", pruned, want)
			}
			count := func(query string) int {
				t.Helper()
				var n int
				if err := s.db.QueryRowContext(ctx, query).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			for query, want := range map[string]int{
				`SELECT COUNT(*) FROM sb_audit`:                                              1,
				`SELECT COUNT(*) FROM sb_runs WHERE id IN ('r-old', 'r-old-failed')`:         0,
				`SELECT COUNT(*) FROM sb_runs`:                                               3,
				`SELECT COUNT(*) FROM sb_messages WHERE run_id IN ('r-old', 'r-old-failed')`: 0,
				`SELECT COUNT(*) FROM sb_messages`:                                           3,
				`SELECT COUNT(*) FROM sb_approvals`:                                          3,
				`SELECT COUNT(*) FROM sb_deliveries`:                                         1,
				`SELECT COUNT(*) FROM sb_instances WHERE id = 'i-gone'`:                      0,
				`SELECT COUNT(*) FROM sb_instances`:                                          3,
				`SELECT COUNT(*) FROM sb_transcript WHERE run_id = 'r-new'`:                  1,
			} {
				if got := count(query); got != want {
					t.Errorf("%s = %d, want %d", query, got, want)
				}
			}
			// Nothing more to do the second time.
			if again, err := s.Prune(ctx, r, now); err != nil || again.Any() {
				t.Errorf("second prune: %+v, %v", again, err)
			}
			// Zero keeps everything.
			if none, err := s.Prune(ctx, Retention{}, now.Add(10000*24*time.Hour)); err != nil || none.Any() {
				t.Errorf("prune with no retention: %+v, %v", none, err)
			}
		})
	}
}

func finishedOr(finished, otherwise int64) int64 {
	if finished != 0 {
		return finished
	}
	return otherwise
}

// The leader prunes on its own once it starts, and then every PruneEvery.
func TestPruneRunsOnTheLeader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "sb.db"), Options{Retention: Retention{Audit: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO sb_audit (at, kind, subject) VALUES (?, 'request', 'old'), (?, 'request', 'new')`,
		time.Now().Add(-2*time.Hour).UnixNano(), time.Now().UnixNano()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, Work{}); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(ctx) //nolint:errcheck
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sb_audit`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d audit lines 30 s after start, want the old one pruned", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
