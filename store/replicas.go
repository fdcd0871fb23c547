package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Replicas that share one Postgres database each write a heartbeat every
// heartbeatEvery. A replica silent for replicaDeadAfter is taken for dead:
// whichever replica notices first makes the jobs it was working available
// to all, so its users wait seconds, not the three minutes of River's
// stuck-job rescue. That is safe because a job may run again: every cloud
// mutation checks the instance's state first (and launches carry a client
// token), and a message whose post may have reached Slack is looked up
// before it is posted again (see messageWorker).
//
// With SQLite there is one process, and Start takes back every running job.
const (
	heartbeatEvery   = 5 * time.Second
	replicaDeadAfter = 20 * time.Second
)

// replicaSchema is Postgres only: heartbeats use the database's clock, so
// replicas on hosts whose clocks disagree still agree on who is silent.
const replicaSchema = `CREATE TABLE IF NOT EXISTS sb_replicas (
	id TEXT PRIMARY KEY,
	started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
	seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// heartbeat records that this replica is alive.
func (s *Store) heartbeat(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sb_replicas (id) VALUES ($1)
		ON CONFLICT (id) DO UPDATE SET seen_at = now()`, s.clientID)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// takeOver makes the running jobs of every replica silent for longer than
// replicaDeadAfter available again, forgets those replicas, and returns
// how many jobs it freed and from whom. Replicas may all run it at once:
// each silent replica is handled by the one that locks its row.
func (s *Store) takeOver(ctx context.Context) (int, []string, error) {
	var freed int
	var dead []string
	err := s.inTx(ctx, s.db, func(tx *sql.Tx) error {
		var err error
		dead, err = column[string](tx.QueryContext(ctx, `SELECT id FROM sb_replicas
			WHERE seen_at < now() - make_interval(secs => $1) AND id <> $2
			FOR UPDATE SKIP LOCKED`, replicaDeadAfter.Seconds(), s.clientID))
		if err != nil {
			return err
		}
		for _, id := range dead {
			n, err := releaseJobs(ctx, tx, id)
			if err != nil {
				return err
			}
			freed += n
			if _, err := tx.ExecContext(ctx, `DELETE FROM sb_replicas WHERE id = $1`, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("take over silent replicas: %w", err)
	}
	return freed, dead, nil
}

// releaseJobs makes the jobs that replica id was working available now.
func releaseJobs(ctx context.Context, db execer, id string) (int, error) {
	res, err := db.ExecContext(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now()
		WHERE state = 'running' AND attempted_by[array_length(attempted_by, 1)] = $1`, id)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// keepAlive heartbeats and takes over silent replicas until ctx ends.
func (s *Store) keepAlive(ctx context.Context) {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		if err := s.heartbeat(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("replica heartbeat failed", "replica", s.clientID, "err", err)
		}
		if n, dead, err := s.takeOver(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("replica takeover failed", "err", err)
		} else if len(dead) > 0 {
			s.logger.Warn("took over the work of silent replicas", "replicas", dead, "jobs", n,
				"silent_for_more_than", replicaDeadAfter)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// leave hands this replica's unfinished jobs to the others and removes its
// heartbeat: called once its job queue has stopped, so the others need not
// wait for it to fall silent.
func (s *Store) leave(ctx context.Context) error {
	return s.inTx(ctx, s.db, func(tx *sql.Tx) error {
		n, err := releaseJobs(ctx, tx, s.clientID)
		if err != nil {
			return err
		}
		if n > 0 {
			s.logger.Info("handed unfinished jobs to the other replicas", "jobs", n)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM sb_replicas WHERE id = $1`, s.clientID)
		return err
	})
}
