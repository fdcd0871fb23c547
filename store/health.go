package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// writeHealth remembers the store's last write failure that says the
// database cannot take writes at all (a full disk, a read-only file, a
// broken connection), so that /readyz says not-ready while commands would
// fail, and not only when the database stops answering.
type writeHealth struct {
	mu       sync.Mutex
	faultAt  time.Time
	fault    error
	probedAt time.Time
	probeErr error
}

// faultMemory is how long a write failure keeps the store not ready after
// the last one, unless a write succeeds since.
const faultMemory = 10 * time.Second

// noteWrite records how a write went: a storage fault is remembered, a
// success clears the memory of one.
func (s *Store) noteWrite(err error) {
	h := &s.health
	if err != nil && !storageFault(err) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.fault = nil
		return
	}
	h.fault, h.faultAt = err, time.Now()
}

// storageFault reports whether err says the database cannot write at all,
// rather than that one statement was wrong.
func storageFault(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 8, 10, 13, 14: // SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
			return true
		}
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 53: insufficient resources (disk full, out of memory);
		// 25006: read-only transaction (a standby); class 08: connection.
		return pe.Code[:2] == "53" || pe.Code == "25006" || pe.Code[:2] == "08"
	}
	return false
}

// Ping reports whether the store answers and can write. It writes a small
// row (at most once a second, however often it is asked), and reports a
// storage fault that any write met in the last few seconds.
func (s *Store) Ping(ctx context.Context) error {
	h := &s.health
	h.mu.Lock()
	if h.fault != nil && time.Since(h.faultAt) < faultMemory {
		defer h.mu.Unlock()
		return fmt.Errorf("cannot write: %w", h.fault)
	}
	if time.Since(h.probedAt) < time.Second {
		defer h.mu.Unlock()
		return h.probeErr
	}
	h.probedAt = time.Now()
	h.mu.Unlock() // not held across the write: writers note their outcome under it
	err := s.req.PingContext(ctx)
	if err == nil {
		_, err = s.req.ExecContext(ctx, s.q(`INSERT INTO sb_leases (name, holder, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at`), "readyz:"+s.clientID, s.clientID, time.Now().UnixNano())
		if err != nil {
			err = fmt.Errorf("cannot write: %w", err)
		}
	}
	h.mu.Lock()
	h.probeErr = err
	h.mu.Unlock()
	return err
}
