package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Audit writes one audit line.
func (s *Store) Audit(ctx context.Context, ev switchboard.AuditEvent) error {
	return s.insertAudit(ctx, s.req, []switchboard.AuditEvent{ev})
}

// insertAudit writes evs with one statement: a command's request, action
// and run lines go in together.
func (s *Store) insertAudit(ctx context.Context, db execer, evs []switchboard.AuditEvent) error {
	// Within the databases' limits on parameters per statement.
	const most = 500
	for len(evs) > most {
		if err := s.insertAudit(ctx, db, evs[:most]); err != nil {
			return err
		}
		evs = evs[most:]
	}
	if len(evs) == 0 {
		return nil
	}
	var query strings.Builder
	query.WriteString(`INSERT INTO sb_audit (at, run_id, kind, actor, channel, subject, outcome, detail) VALUES `)
	args := make([]any, 0, 8*len(evs))
	now := time.Now()
	for i, ev := range evs {
		if i > 0 {
			query.WriteString(", ")
		}
		query.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
		if ev.Time.IsZero() {
			ev.Time = now
		}
		args = append(args, ev.Time.UnixNano(), ev.RunID, ev.Kind, ev.Actor, ev.Channel, ev.Subject, ev.Outcome, ev.Detail)
	}
	if _, err := db.ExecContext(ctx, s.q(query.String()), args...); err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	return nil
}

// ListAudit returns the audit lines q selects, newest first.
func (s *Store) ListAudit(ctx context.Context, q switchboard.AuditQuery) ([]switchboard.AuditEvent, error) {
	if q.Limit <= 0 || q.Limit > 10000 {
		q.Limit = 1000
	}
	where := []string{"at >= ?"}
	args := []any{q.Since.UnixNano()}
	for _, f := range []struct{ column, value string }{{"actor", q.Actor}, {"kind", q.Kind}, {"outcome", q.Outcome}} {
		if f.value != "" {
			where = append(where, f.column+" = ?")
			args = append(args, f.value)
		}
	}
	if q.RunID != "" {
		where = append(where, `run_id LIKE ? ESCAPE '\'`)
		args = append(args, likePrefix(q.RunID))
	}
	args = append(args, q.Limit)
	rows, err := s.req.QueryContext(ctx, s.q(`SELECT id, at, run_id, kind, actor, channel, subject, outcome, detail FROM sb_audit
		WHERE `+strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT ?`), args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	evs, err := scanAudit(rows)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return evs, nil
}

// scanAudit reads the audit lines rows holds and closes it.
func scanAudit(rows *sql.Rows) ([]switchboard.AuditEvent, error) {
	defer rows.Close()
	var evs []switchboard.AuditEvent
	for rows.Next() {
		var ev switchboard.AuditEvent
		var at int64
		if err := rows.Scan(&ev.ID, &at, &ev.RunID, &ev.Kind, &ev.Actor, &ev.Channel, &ev.Subject, &ev.Outcome, &ev.Detail); err != nil {
			return nil, err
		}
		ev.Time = time.Unix(0, at)
		evs = append(evs, ev)
	}
	return evs, rows.Err()
}

// RunAudit returns a run's audit lines, oldest first.
func (s *Store) RunAudit(ctx context.Context, runID string) ([]switchboard.AuditEvent, error) {
	rows, err := s.req.QueryContext(ctx, s.q(`SELECT id, at, run_id, kind, actor, channel, subject, outcome, detail FROM sb_audit
		WHERE run_id = ? ORDER BY id LIMIT 1000`), runID)
	if err != nil {
		return nil, fmt.Errorf("list audit of run %s: %w", runID, err)
	}
	evs, err := scanAudit(rows)
	if err != nil {
		return nil, fmt.Errorf("list audit of run %s: %w", runID, err)
	}
	return evs, nil
}

// likePrefix is a LIKE pattern matching what begins with s.
func likePrefix(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`)
	return r.Replace(s) + "%"
}

// AppendTranscript adds a line to a channel's transcript and returns its id.
func (s *Store) AppendTranscript(ctx context.Context, line switchboard.TranscriptLine) (int64, error) {
	return s.appendTranscript(ctx, s.req, line)
}

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) appendTranscript(ctx context.Context, db rowQuerier, line switchboard.TranscriptLine) (int64, error) {
	if line.Time.IsZero() {
		line.Time = time.Now()
	}
	var id int64
	err := db.QueryRowContext(ctx, s.q(`INSERT INTO sb_transcript (at, run_id, channel_id, user_id, kind, body, approval_id) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		line.Time.UnixNano(), line.RunID, line.ChannelID, line.UserID, line.Kind, line.Text, line.ApprovalID).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("append transcript: %w", err)
	}
	return id, nil
}

// Transcript returns a channel's lines after afterID, oldest first.
func (s *Store) Transcript(ctx context.Context, channel string, afterID int64, limit int) ([]switchboard.TranscriptLine, error) {
	if limit <= 0 || limit > 1000 {
		limit = 200
	}
	rows, err := s.req.QueryContext(ctx, s.q(`SELECT id, at, run_id, channel_id, user_id, kind, body, approval_id FROM sb_transcript
		WHERE channel_id = ? AND id > ? ORDER BY id LIMIT ?`), channel, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("read transcript: %w", err)
	}
	defer rows.Close()
	var lines []switchboard.TranscriptLine
	for rows.Next() {
		var l switchboard.TranscriptLine
		var at int64
		if err := rows.Scan(&l.ID, &at, &l.RunID, &l.ChannelID, &l.UserID, &l.Kind, &l.Text, &l.ApprovalID); err != nil {
			return nil, fmt.Errorf("read transcript: %w", err)
		}
		l.Time = time.Unix(0, at)
		lines = append(lines, l)
	}
	return lines, rows.Err()
}

// FirstDelivery records a delivery key (a Slack event_id, an SQS message id)
// and reports whether this is the first time it was seen.
func (s *Store) FirstDelivery(ctx context.Context, key string) (bool, error) {
	res, err := s.req.ExecContext(ctx, s.q(`INSERT INTO sb_deliveries (delivery_key, seen_at) VALUES (?, ?) ON CONFLICT (delivery_key) DO NOTHING`), key, time.Now().UnixNano())
	if err != nil {
		return false, fmt.Errorf("record delivery: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record delivery: %w", err)
	}
	return n == 1, nil
}

// ForgetDelivery removes a delivery key, so that a retry of a delivery whose
// handling failed after it was recorded is handled again rather than dropped
// as a duplicate.
func (s *Store) ForgetDelivery(ctx context.Context, key string) error {
	if _, err := s.req.ExecContext(ctx, s.q(`DELETE FROM sb_deliveries WHERE delivery_key = ?`), key); err != nil {
		return fmt.Errorf("forget delivery: %w", err)
	}
	return nil
}
