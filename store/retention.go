package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"
)

// Retention is how long the store keeps what nobody needs any more. Zero
// keeps it forever. The leader prunes every PruneEvery, in batches, so that
// neither the audit log nor the runs grow without end and acks never wait
// long behind a prune. (River cleans its own job table: finished jobs go
// after a day, cancelled and discarded ones after a week.)
type Retention struct {
	// Audit is how long audit lines are kept.
	Audit time.Duration
	// Runs is how long a finished run is kept, with its messages,
	// approvals and channel transcript lines; and how long the inventory
	// remembers an instance that left and was cleaned up after (settled)
	// and has not been seen since.
	Runs time.Duration
	// Deliveries is how long the keys that deduplicate deliveries (Slack
	// event ids and interactions, mail and queue message ids) are kept;
	// redeliveries come within hours.
	Deliveries time.Duration
}

// PruneEvery is how often the leader prunes.
const PruneEvery = time.Hour

// pruneBatch is how many rows one delete removes; each batch is a
// transaction of its own. maxPruneBatches bounds one prune per table: a
// backlog is worked off over the next rounds.
const (
	pruneBatch      = 1000
	maxPruneBatches = 200
)

// PruneArgs is the periodic job that prunes.
type PruneArgs struct{}

func (PruneArgs) Kind() string { return "prune" }

// pruneJob is the periodic job River's leader enqueues, or nil when
// nothing is pruned.
func pruneJob(r Retention) *river.PeriodicJob {
	if r == (Retention{}) {
		return nil
	}
	return river.NewPeriodicJob(river.PeriodicInterval(PruneEvery), func() (river.JobArgs, *river.InsertOpts) {
		return PruneArgs{}, &river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: PruneEvery}}
	}, &river.PeriodicJobOpts{RunOnStart: true, ID: "prune"})
}

type pruneWorker struct {
	river.WorkerDefaults[PruneArgs]
	s *Store
	r Retention
}

func (w *pruneWorker) Timeout(*river.Job[PruneArgs]) time.Duration { return 15 * time.Minute }

func (w *pruneWorker) Work(ctx context.Context, _ *river.Job[PruneArgs]) error {
	pruned, err := w.s.Prune(ctx, w.r, time.Now())
	if pruned.Any() {
		w.s.logger.Info("pruned the store", "audit", pruned.Audit, "runs", pruned.Runs, "transcript", pruned.Transcript,
			"instances", pruned.Instances, "deliveries", pruned.Deliveries)
	}
	return err
}

// Pruned counts what one prune removed.
type Pruned struct {
	Audit, Runs, Transcript, Instances, Deliveries int
}

// Any reports whether anything was removed.
func (p Pruned) Any() bool { return p != (Pruned{}) }

// Prune removes what is older than r keeps, as of now, in batches: audit
// lines, finished runs whose messages are all delivered or given up (with
// their messages and approvals), transcript lines, settled instances,
// delivery keys.
func (s *Store) Prune(ctx context.Context, r Retention, now time.Time) (Pruned, error) {
	var p Pruned
	cutoff := func(d time.Duration) int64 { return now.Add(-d).UnixNano() }
	var err error
	if r.Audit > 0 {
		p.Audit, err = s.pruneBatches(ctx, `DELETE FROM sb_audit WHERE id IN (SELECT id FROM sb_audit WHERE at < ? ORDER BY at LIMIT ?)`, cutoff(r.Audit))
		if err != nil {
			return p, fmt.Errorf("prune audit: %w", err)
		}
	}
	if r.Runs > 0 {
		if p.Runs, err = s.pruneRuns(ctx, cutoff(r.Runs)); err != nil {
			return p, fmt.Errorf("prune runs: %w", err)
		}
		p.Transcript, err = s.pruneBatches(ctx, `DELETE FROM sb_transcript WHERE id IN (SELECT id FROM sb_transcript WHERE at < ? ORDER BY at LIMIT ?)`, cutoff(r.Runs))
		if err != nil {
			return p, fmt.Errorf("prune transcript: %w", err)
		}
		p.Instances, err = s.pruneBatches(ctx, `DELETE FROM sb_instances WHERE (cloud, id) IN (SELECT cloud, id FROM sb_instances
			WHERE settled_at > 0 AND settled_at < ? AND seen_at < settled_at LIMIT ?)`, cutoff(r.Runs))
		if err != nil {
			return p, fmt.Errorf("prune instances: %w", err)
		}
	}
	if r.Deliveries > 0 {
		p.Deliveries, err = s.pruneBatches(ctx, `DELETE FROM sb_deliveries WHERE delivery_key IN (SELECT delivery_key FROM sb_deliveries WHERE seen_at < ? LIMIT ?)`, cutoff(r.Deliveries))
		if err != nil {
			return p, fmt.Errorf("prune deliveries: %w", err)
		}
	}
	return p, nil
}

// pruneBatches runs a delete of at most pruneBatch rows older than cutoff
// until it removes fewer, and returns how many it removed.
func (s *Store) pruneBatches(ctx context.Context, query string, cutoff int64) (int, error) {
	total := 0
	for range maxPruneBatches {
		res, err := s.db.ExecContext(ctx, s.q(query), cutoff, pruneBatch)
		if err != nil {
			return total, err
		}
		n, _ := res.RowsAffected()
		total += int(n)
		if n < pruneBatch {
			break
		}
	}
	return total, nil
}

// pruneRuns removes runs finished before cutoff, a batch at a time, each
// with its messages and approvals in one transaction. A run with a message
// still on its way stays until it is delivered or given up.
func (s *Store) pruneRuns(ctx context.Context, cutoff int64) (int, error) {
	total := 0
	for range maxPruneBatches {
		rows, err := s.db.QueryContext(ctx, s.q(`SELECT id FROM sb_runs r WHERE r.finished_at > 0 AND r.finished_at < ?
			AND NOT EXISTS (SELECT 1 FROM sb_messages m WHERE m.run_id = r.id AND m.sent_at = 0) ORDER BY r.finished_at LIMIT ?`), cutoff, pruneBatch)
		if err != nil {
			return total, err
		}
		var ids []any
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return total, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return total, err
		}
		if len(ids) == 0 {
			break
		}
		in := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ") + ")"
		err = s.inTx(ctx, s.db, func(tx *sql.Tx) error {
			for _, table := range []string{"sb_messages", "sb_approvals", "sb_locks", "sb_runs"} {
				col := "run_id"
				if table == "sb_runs" {
					col = "id"
				}
				if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM `+table+` WHERE `+col+` IN `+in), ids...); err != nil {
					return fmt.Errorf("delete from %s: %w", table, err)
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(ids)
		if len(ids) < pruneBatch {
			break
		}
	}
	return total, nil
}
