package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/switchboardhq/switchboard"
)

const runColumns = `id, workflow, cloud, state, request, plan, step_cursor, scratch, vars, result, error, outcome, steps, created_at, updated_at, finished_at`

// CreateRun writes a new run, its audit lines and the job that will carry it
// out in one transaction. A repeated delivery (same source and delivery id)
// writes nothing and returns the run the first delivery created.
func (s *Store) CreateRun(ctx context.Context, run *switchboard.Run, audit []switchboard.AuditEvent) (*switchboard.Run, error) {
	req, err := json.Marshal(run.Request)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	plan, err := json.Marshal(run.Plan)
	if err != nil {
		return nil, fmt.Errorf("encode plan: %w", err)
	}
	var deliveryKey any
	if run.Request.DeliveryID != "" {
		deliveryKey = run.Request.Source + ":" + run.Request.DeliveryID
	}
	var existing *switchboard.Run
	// With a worker free, the run is worked here at once (fast.go).
	fast := s.fast.take()
	var job int64
	// On SQLite a run on the fast path has no job row, only this mark
	// (fast.go).
	unqueued := 0
	if fast && !s.postgres {
		job, unqueued = rowless, 1
	}
	err = s.inTx(ctx, s.req, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO sb_runs (id, delivery_key, workflow, cloud, state, request, plan, created_at, updated_at, unqueued)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_key) DO NOTHING`),
			run.ID, deliveryKey, run.Workflow, run.Cloud, string(run.State), string(req), string(plan), run.CreatedAt.UnixNano(), run.UpdatedAt.UnixNano(), unqueued)
		if err != nil {
			return fmt.Errorf("insert run: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			existing, err = s.getRun(ctx, tx, `delivery_key = ?`, deliveryKey)
			return err
		}
		if err := s.insertAudit(ctx, tx, audit); err != nil {
			return err
		}
		switch {
		case job == rowless:
		case fast:
			job, err = s.insertTaken(ctx, tx, RunArgs{RunID: run.ID}, RunArgs{}.InsertOpts())
		default:
			_, err = s.river.InsertTx(ctx, tx, RunArgs{RunID: run.ID}, nil)
		}
		if err != nil {
			return fmt.Errorf("enqueue run: %w", err)
		}
		return nil
	})
	if fast {
		if err != nil || existing != nil {
			s.fast.give()
		} else {
			go s.workFast(job, 1, run.ID, asRead(run, req, plan))
		}
	}
	return existing, err
}

// asRead is run as GetRun reads it back just after CreateRun wrote it:
// only what CreateRun writes, request and plan decoded from what it wrote.
func asRead(run *switchboard.Run, req, plan []byte) *switchboard.Run {
	r := &switchboard.Run{ID: run.ID, Workflow: run.Workflow, Cloud: run.Cloud, State: run.State,
		CreatedAt: time.Unix(0, run.CreatedAt.UnixNano()), UpdatedAt: time.Unix(0, run.UpdatedAt.UnixNano()),
		Request: run.Request}
	// A command's request is strings and a time: copied, the time as its
	// JSON reads back. An event's is decoded.
	var err error
	if r.Request.Event != nil {
		r.Request = switchboard.Request{}
		err = json.Unmarshal(req, &r.Request)
	} else {
		var at []byte
		if at, err = run.Request.ReceivedAt.MarshalJSON(); err == nil {
			err = r.Request.ReceivedAt.UnmarshalJSON(at)
		}
	}
	if err != nil || json.Unmarshal(plan, &r.Plan) != nil {
		return nil // workFast reads it
	}
	return r
}

// SaveRun writes a run's progress.
func (s *Store) SaveRun(ctx context.Context, run *switchboard.Run) error {
	return s.saveRun(ctx, s.db, run)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) saveRun(ctx context.Context, db execer, run *switchboard.Run) error {
	vars, err := json.Marshal(run.Vars)
	if err != nil {
		return fmt.Errorf("encode vars: %w", err)
	}
	var steps []byte
	if len(run.Steps) > 0 {
		if steps, err = json.Marshal(run.Steps); err != nil {
			return fmt.Errorf("encode steps: %w", err)
		}
	}
	var finished int64
	if !run.FinishedAt.IsZero() {
		finished = run.FinishedAt.UnixNano()
	}
	run.UpdatedAt = time.Now()
	_, err = db.ExecContext(ctx, s.q(`UPDATE sb_runs SET state = ?, step_cursor = ?, scratch = ?, vars = ?, result = ?, error = ?, outcome = ?, steps = ?, updated_at = ?, finished_at = ? WHERE id = ?`),
		string(run.State), run.Cursor, string(run.Scratch), string(vars), run.Result, run.Error, run.Outcome, string(steps), run.UpdatedAt.UnixNano(), finished, run.ID)
	if err != nil {
		return fmt.Errorf("save run %s: %w", run.ID, err)
	}
	return nil
}

// GetRun reads one run.
func (s *Store) GetRun(ctx context.Context, id string) (*switchboard.Run, error) {
	return s.getRun(ctx, s.db, `id = ?`, id)
}

func (s *Store) getRun(ctx context.Context, db querier, where string, arg any) (*switchboard.Run, error) {
	row := db.QueryRowContext(ctx, s.q(`SELECT `+runColumns+` FROM sb_runs WHERE `+where), arg)
	run, err := scanRun(row)
	if isNoRows(err) {
		return nil, switchboard.Errorf(switchboard.ENOTFOUND, "No run %v.", arg)
	}
	return run, err
}

type scanner interface{ Scan(dest ...any) error }

func scanRun(row scanner) (*switchboard.Run, error) {
	var (
		run                        switchboard.Run
		state, req, plan           string
		scratch, vars, steps       string
		created, updated, finished int64
	)
	if err := row.Scan(&run.ID, &run.Workflow, &run.Cloud, &state, &req, &plan, &run.Cursor, &scratch, &vars,
		&run.Result, &run.Error, &run.Outcome, &steps, &created, &updated, &finished); err != nil {
		return nil, err
	}
	if steps != "" {
		if err := json.Unmarshal([]byte(steps), &run.Steps); err != nil {
			return nil, fmt.Errorf("run %s: decode steps: %w", run.ID, err)
		}
	}
	run.State = switchboard.RunState(state)
	if err := json.Unmarshal([]byte(req), &run.Request); err != nil {
		return nil, fmt.Errorf("run %s: decode request: %w", run.ID, err)
	}
	if err := json.Unmarshal([]byte(plan), &run.Plan); err != nil {
		return nil, fmt.Errorf("run %s: decode plan: %w", run.ID, err)
	}
	if scratch != "" {
		run.Scratch = json.RawMessage(scratch)
	}
	if vars != "" && vars != "null" {
		if err := json.Unmarshal([]byte(vars), &run.Vars); err != nil {
			return nil, fmt.Errorf("run %s: decode vars: %w", run.ID, err)
		}
	}
	run.CreatedAt = time.Unix(0, created)
	run.UpdatedAt = time.Unix(0, updated)
	if finished != 0 {
		run.FinishedAt = time.Unix(0, finished)
	}
	return &run, nil
}

// ListRuns returns the newest runs first.
func (s *Store) ListRuns(ctx context.Context, limit int) ([]switchboard.Run, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.req.QueryContext(ctx, s.q(`SELECT `+runColumns+` FROM sb_runs ORDER BY created_at DESC, id DESC LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var runs []switchboard.Run
	for rows.Next() {
		run, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		runs = append(runs, *run)
	}
	return runs, rows.Err()
}

// RunMessages returns what a run said, oldest first, with how each
// delivery went. Response URLs are left out: each is a credential for its
// channel.
func (s *Store) RunMessages(ctx context.Context, runID string) ([]switchboard.MessageRecord, error) {
	recs, err := s.runMessages(ctx, runID)
	for i := range recs {
		recs[i].ResponseURL = ""
	}
	return recs, err
}

// ApprovalMessage returns the message that asked for an approval, response
// URL and all, so that it can be updated once the approval is decided.
func (s *Store) ApprovalMessage(ctx context.Context, ap *switchboard.Approval) (switchboard.MessageRecord, error) {
	recs, err := s.runMessages(ctx, ap.RunID)
	if err != nil {
		return switchboard.MessageRecord{}, err
	}
	for _, rec := range recs {
		if rec.ApprovalID == ap.ID {
			return rec, nil
		}
	}
	return switchboard.MessageRecord{}, switchboard.Errorf(switchboard.ENOTFOUND, "No message asked for approval %s.", ap.ID)
}

func (s *Store) runMessages(ctx context.Context, runID string) ([]switchboard.MessageRecord, error) {
	rows, err := s.req.QueryContext(ctx, s.q(`SELECT body, created_at, sent_at, via, ts, last_error FROM sb_messages WHERE run_id = ? ORDER BY created_at, msg_key`), runID)
	if err != nil {
		return nil, fmt.Errorf("list messages of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []switchboard.MessageRecord
	for rows.Next() {
		var (
			body          string
			created, sent int64
			rec           switchboard.MessageRecord
		)
		if err := rows.Scan(&body, &created, &sent, &rec.Via, &rec.Ref, &rec.Error); err != nil {
			return nil, fmt.Errorf("list messages of run %s: %w", runID, err)
		}
		if err := json.Unmarshal([]byte(body), &rec.Message); err != nil {
			return nil, fmt.Errorf("run %s: decode message: %w", runID, err)
		}
		rec.CreatedAt = time.Unix(0, created)
		if sent > 0 {
			rec.SentAt = time.Unix(0, sent)
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}

// CountRunsByState counts runs in each state, for metrics.
func (s *Store) CountRunsByState(ctx context.Context) (map[switchboard.RunState]int, error) {
	rows, err := s.req.QueryContext(ctx, `SELECT state, COUNT(*) FROM sb_runs GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	defer rows.Close()
	counts := map[switchboard.RunState]int{}
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, err
		}
		counts[switchboard.RunState(state)] = n
	}
	return counts, rows.Err()
}

// LockInstances takes every key for runID, or none: it returns the id of an
// unfinished run holding one of them. A lock left by a finished run (it
// should have been released with it) is taken over.
func (s *Store) LockInstances(ctx context.Context, runID string, keys []string) (string, error) {
	if !s.postgres {
		s.lockers.Store(runID, true)
	}
	var holder string
	err := s.inTx(ctx, s.db, func(tx *sql.Tx) error {
		now := time.Now().UnixNano()
		for _, key := range keys {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO sb_locks (lock_key, run_id, acquired_at) VALUES (?, ?, ?) ON CONFLICT (lock_key) DO NOTHING`), key, runID, now); err != nil {
				return fmt.Errorf("lock %s: %w", key, err)
			}
			var owner, ownerState string
			err := tx.QueryRowContext(ctx, s.q(`SELECT l.run_id, COALESCE(r.state, '') FROM sb_locks l LEFT JOIN sb_runs r ON r.id = l.run_id WHERE l.lock_key = ?`), key).Scan(&owner, &ownerState)
			if err != nil {
				return fmt.Errorf("lock %s: %w", key, err)
			}
			if owner == runID {
				continue
			}
			if ownerState == "" || switchboard.RunState(ownerState).Finished() {
				if _, err := tx.ExecContext(ctx, s.q(`UPDATE sb_locks SET run_id = ?, acquired_at = ? WHERE lock_key = ? AND run_id = ?`), runID, now, key, owner); err != nil {
					return fmt.Errorf("take over lock %s: %w", key, err)
				}
				continue
			}
			holder = owner
			return errHeld
		}
		return nil
	})
	if err == errHeld {
		return holder, nil
	}
	return "", err
}

var errHeld = fmt.Errorf("lock held")

// commitOutcome writes what advancing a run produced, in one transaction: the
// run, new messages and the jobs that deliver them (a message already written
// for the same run and key is not written or sent again), audit lines, and,
// when the run finished, the release of its instance locks. With f (the
// run worked in this process, see fast.go), the messages' jobs are taken by
// this process as they are written and the run's own job is finished or
// parked in the same transaction.
func (s *Store) commitOutcome(ctx context.Context, run *switchboard.Run, out switchboard.Outcome, f *fastRun) error {
	// Only a run that took locks has any to release; on SQLite this process
	// is the only one that takes them.
	release := run.State.Finished()
	if release && !s.postgres && !s.oldLocks {
		_, release = s.lockers.Load(run.ID)
	}
	err := s.inTx(ctx, s.db, func(tx *sql.Tx) error {
		if f != nil {
			// This may run again (groupCommit).
			f.messages, f.settle = f.messages[:0], nil
		}
		if err := s.saveRun(ctx, tx, run); err != nil {
			return err
		}
		for _, m := range out.Messages {
			body, err := json.Marshal(m)
			if err != nil {
				return fmt.Errorf("encode message: %w", err)
			}
			// The first message this process posts at once has its intent
			// on record from the start (see deliver).
			intent := f != nil && len(f.messages) == 0
			now := time.Now().UnixNano()
			var sending int64
			if intent {
				sending = now
			}
			// On the fast path a message has no job of its own: it is held by
			// the run's job, which stays running until the message is
			// delivered or given a job (fast.go).
			held := 0
			if f != nil && f.job != 0 {
				held = 1
			}
			res, err := tx.ExecContext(ctx, s.q(`INSERT INTO sb_messages (run_id, msg_key, body, created_at, sending_at, held) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, msg_key) DO NOTHING`),
				m.RunID, m.Key, string(body), now, sending, held)
			if err != nil {
				return fmt.Errorf("insert message: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue
			}
			if f == nil {
				if _, err := s.river.InsertTx(ctx, tx, MessageArgs{RunID: m.RunID, Key: m.Key}, nil); err != nil {
					return fmt.Errorf("enqueue message: %w", err)
				}
				continue
			}
			var id int64
			if held == 0 {
				if id, err = s.insertTaken(ctx, tx, MessageArgs{RunID: m.RunID, Key: m.Key}, MessageArgs{}.InsertOpts()); err != nil {
					return fmt.Errorf("enqueue message: %w", err)
				}
			}
			f.messages = append(f.messages, fastMessage{m: m, job: id, intent: intent, created: now})
		}
		if f != nil && f.job != 0 {
			if err := s.settleRunJob(ctx, tx, f, run, out); err != nil {
				return err
			}
		}
		if err := s.insertAudit(ctx, tx, out.Audit); err != nil {
			return err
		}
		if release {
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM sb_locks WHERE run_id = ?`), run.ID); err != nil {
				return fmt.Errorf("release locks: %w", err)
			}
		}
		return nil
	})
	if err == nil && run.State.Finished() {
		s.lockers.Delete(run.ID)
	}
	return err
}
