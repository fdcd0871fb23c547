package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// OpenApproval records a new approval; opening the same id again (a retried
// step) changes nothing.
func (s *Store) OpenApproval(ctx context.Context, a switchboard.Approval) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode approval: %w", err)
	}
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO sb_approvals (id, run_id, state, body, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
		a.ID, a.RunID, a.State, string(body), a.CreatedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("open approval %s: %w", a.ID, err)
	}
	return nil
}

// GetApproval reads one approval.
func (s *Store) GetApproval(ctx context.Context, id string) (*switchboard.Approval, error) {
	return s.getApproval(ctx, s.req, id, false)
}

func (s *Store) getApproval(ctx context.Context, db querier, id string, forUpdate bool) (*switchboard.Approval, error) {
	query := `SELECT body FROM sb_approvals WHERE id = ?`
	if forUpdate && s.postgres {
		query += ` FOR UPDATE`
	}
	var body string
	err := db.QueryRowContext(ctx, s.q(query), id).Scan(&body)
	if isNoRows(err) {
		return nil, switchboard.Errorf(switchboard.ENOTFOUND, "No approval %s.", id)
	} else if err != nil {
		return nil, fmt.Errorf("read approval %s: %w", id, err)
	}
	var a switchboard.Approval
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		return nil, fmt.Errorf("decode approval %s: %w", id, err)
	}
	return &a, nil
}

// UpdateApproval reads an approval, lets fn change it and writes it back, in
// one transaction (the SQLite writer, or a row lock on Postgres), so that two
// decisions at once are applied one after the other. When fn returns an
// error nothing is written, and the approval as read is returned with it.
func (s *Store) UpdateApproval(ctx context.Context, id string, fn func(a *switchboard.Approval) error) (*switchboard.Approval, error) {
	var out *switchboard.Approval
	var fnErr error
	err := s.inTx(ctx, s.req, func(tx *sql.Tx) error {
		a, err := s.getApproval(ctx, tx, id, true)
		if err != nil {
			return err
		}
		out = a
		if fnErr = fn(a); fnErr != nil {
			return fnErr
		}
		body, err := json.Marshal(a)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE sb_approvals SET state = ?, body = ? WHERE id = ?`), a.State, string(body), id)
		return err
	})
	if fnErr != nil {
		return out, fnErr
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListApprovals returns approvals in a state ("" for any), newest first.
func (s *Store) ListApprovals(ctx context.Context, state string, limit int) ([]switchboard.Approval, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	return s.approvals(ctx, `SELECT body FROM sb_approvals WHERE (? = '' OR state = ?) ORDER BY created_at DESC LIMIT ?`, state, state, limit)
}

func (s *Store) approvals(ctx context.Context, query string, args ...any) ([]switchboard.Approval, error) {
	rows, err := s.req.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	defer rows.Close()
	var out []switchboard.Approval
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		var a switchboard.Approval
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// RunApprovals returns the approvals a run asked for, oldest first.
func (s *Store) RunApprovals(ctx context.Context, runID string) ([]switchboard.Approval, error) {
	return s.approvals(ctx, `SELECT body FROM sb_approvals WHERE run_id = ? ORDER BY created_at`, runID)
}

// ApprovalsByID returns the approvals among ids that exist, in no
// particular order.
func (s *Store) ApprovalsByID(ctx context.Context, ids []string) ([]switchboard.Approval, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return s.approvals(ctx, `SELECT body FROM sb_approvals WHERE id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`, args...)
}

// TryLead takes or keeps the lease called name for holder until ttl from
// now, and reports whether holder has it. A lease whose holder stopped
// renewing it passes to the next one to ask once it expires: that is how one
// replica at a time polls mailboxes and queues.
func (s *Store) TryLead(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := time.Now()
	var got string
	err := s.inTx(ctx, s.db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO sb_leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE
			SET holder = excluded.holder, expires_at = excluded.expires_at WHERE sb_leases.holder = excluded.holder OR sb_leases.expires_at < ?`),
			name, holder, now.Add(ttl).UnixNano(), now.UnixNano())
		if err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, s.q(`SELECT holder FROM sb_leases WHERE name = ?`), name).Scan(&got)
	})
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	return got == holder, nil
}
