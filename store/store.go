// Package store keeps Switchboard's durable state — runs, the audit log, the
// channel transcript, outgoing messages, delivery keys and instance locks —
// and the River job queue that carries runs out, in one SQL database: SQLite
// (embedded, the default) or Postgres (several replicas). Both go through
// database/sql, so a run and the job that works it are written in one
// transaction on either.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/switchboardhq/switchboard"
)

// Store is the database behind one Switchboard process.
type Store struct {
	db *sql.DB // the job workers' pool
	// req is the request path's pool: acks, refusals, deliveries and the
	// console. On SQLite it is a connection of its own, so an ack never
	// queues behind background work for the one writer connection.
	req      *sql.DB
	pgPool   *pgxpool.Pool // Postgres only: LISTEN/NOTIFY for River
	postgres bool
	driver   riverdriver.Driver[*sql.Tx]
	river    *river.Client[*sql.Tx]
	logger   *slog.Logger
	ckpt     *checkpointer // SQLite only
	work     Work
	started  bool
	clientID string
	// stopAlive ends the replica heartbeat; aliveDone closes when it has.
	stopAlive context.CancelFunc
	aliveDone chan struct{}
	// sqlCounts counts SQLite's statements and commits; nil on Postgres.
	sqlCounts *SQLCounts
	// health remembers write failures for readiness.
	health writeHealth
	// inventory gathers what describes show before it is written.
	inventory inventory
	// fast works new runs in this process at once (fast.go); workers is
	// how many at a time, as many as River's per queue.
	fast    fastPath
	workers int
	// group commits SQLite's write transactions together (sqlite.go).
	group *groupCommit
	// lockers are the runs that took instance locks in this process, and
	// oldLocks says locks were held when it opened: a finished run that is
	// neither has no locks to release (SQLite, one process).
	lockers  sync.Map
	oldLocks bool
}

// Options tunes Open.
type Options struct {
	Logger *slog.Logger
	// Workers is how many jobs this process works at once from each of
	// River's queues. Default 20. New runs are worked at once, in this
	// process, by up to five times as many more (see fast.go).
	Workers int
	// Schedules are the workflows' cron schedules.
	Schedules []Schedule
	// ClientID names this replica to the job queue, the same across its
	// restarts (host and listen address): a restarted replica takes back at
	// once the jobs it was working when it died, instead of waiting for the
	// stuck-job rescuer. Two live replicas must not share one.
	ClientID string
	// Retention is how long the store keeps audit lines, finished runs
	// and delivery keys; the zero value keeps everything.
	Retention Retention
}

// Open connects to the database named by rawURL (sqlite://PATH or
// postgres://...), creates or upgrades its tables, and prepares the job
// queue. Call Start to begin working jobs.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	s := &Store{logger: opts.Logger}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case strings.HasPrefix(rawURL, "sqlite://"):
		path := strings.TrimPrefix(rawURL, "sqlite://")
		if path == "" {
			return nil, switchboard.Errorf(switchboard.EINVALID, "store %q names no file; write sqlite://./data/switchboard.db", rawURL)
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("create data directory: %w", err)
			}
		}
		// WAL lets readers (the console, `switchboard audit`) run beside the
		// writer; one connection avoids SQLITE_BUSY between River and us, as
		// riversqlite recommends. A process crash loses nothing committed.
		dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)&_txlock=immediate"
		gate := &writeGate{wrote: make(chan struct{}, 1)}
		ckpt, err := newCheckpointer(path, dsn, gate, s.logger)
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
		s.ckpt = ckpt
		// The checkpointer checkpoints; the connections that write only
		// past checkpointBackstop.
		dsn += fmt.Sprintf("&_pragma=wal_autocheckpoint(%d)", checkpointBackstop)
		s.sqlCounts = &SQLCounts{}
		db := openSQLite(dsn, gate, false, s.sqlCounts)
		db.SetMaxOpenConns(1)
		s.db = db
		s.driver = riversqlite.New(db)
		req := openSQLite(dsn, gate, true, s.sqlCounts)
		req.SetMaxOpenConns(1)
		s.req = req
		s.group = newGroupCommit(req)
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		pool, err := pgxpool.New(ctx, rawURL)
		if err != nil {
			return nil, fmt.Errorf("connect to postgres %s: %w", redactURL(rawURL), err)
		}
		s.pgPool = pool
		s.db = stdlib.OpenDBFromPool(pool)
		s.req = s.db
		s.postgres = true
		s.driver = riverdatabasesql.NewWithPgxListener(s.db, pool)
	default:
		return nil, switchboard.Errorf(switchboard.EINVALID, "store %q is neither sqlite://PATH nor postgres://...", redactURL(rawURL))
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("reach store %s: %w", redactURL(rawURL), err)
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sb_locks)`).Scan(&s.oldLocks); err != nil {
		s.Close()
		return nil, fmt.Errorf("read instance locks: %w", err)
	}
	s.clientID = opts.ClientID
	if err := s.newRiver(opts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the database. Call Stop first when Start was called.
func (s *Store) Close() error {
	s.closeInventory()
	if s.group != nil {
		s.group.close()
	}
	var err error
	if s.req != nil && s.req != s.db {
		err = s.req.Close()
	}
	if s.db != nil {
		err = errors.Join(err, s.db.Close())
	}
	if s.ckpt != nil {
		s.ckpt.close()
	}
	if s.pgPool != nil {
		s.pgPool.Close()
	}
	return err
}

// SQLCounts returns the statement and commit counts of a SQLite store, nil
// for Postgres.
func (s *Store) SQLCounts() *SQLCounts { return s.sqlCounts }

// Postgres reports whether the store is Postgres (and so may be shared by
// several replicas).
func (s *Store) Postgres() bool { return s.postgres }

func (s *Store) migrate(ctx context.Context) error {
	if s.postgres {
		// Replicas starting together take turns.
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(7243100)"); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(7243100)") //nolint:errcheck
	}
	migrator, err := rivermigrate.New(s.driver, &rivermigrate.Config{Logger: quietLogger(s.logger)})
	if err != nil {
		return fmt.Errorf("migrate job queue: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate job queue: %w", err)
	}
	serial := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if s.postgres {
		serial = "BIGSERIAL PRIMARY KEY"
	}
	for _, stmt := range strings.Split(strings.ReplaceAll(schema, "{{serial}}", serial), ";\n") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("migrate: %w\n%s", err, stmt)
		}
	}
	if s.postgres {
		if _, err := s.db.ExecContext(ctx, replicaSchema); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	// Columns added after a table first shipped.
	for _, c := range []struct{ table, column, def string }{
		{"sb_transcript", "approval_id", "TEXT NOT NULL DEFAULT ''"},
		{"sb_messages", "ts", "TEXT NOT NULL DEFAULT ''"},
		{"sb_messages", "sending_at", "BIGINT NOT NULL DEFAULT 0"},
		{"sb_messages", "held", "INTEGER NOT NULL DEFAULT 0"},
		{"sb_runs", "outcome", "TEXT NOT NULL DEFAULT ''"},
		{"sb_runs", "steps", "TEXT NOT NULL DEFAULT ''"},
		{"sb_runs", "unqueued", "INTEGER NOT NULL DEFAULT 0"},
	} {
		if err := s.addColumn(ctx, c.table, c.column, c.def); err != nil {
			return err
		}
	}
	// The runs a start must queue (fast.go): few, and only those.
	if _, err := s.db.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS sb_runs_unqueued ON sb_runs (id) WHERE unqueued = 1`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// addColumn adds a column unless the table has it already.
func (s *Store) addColumn(ctx context.Context, table, column, def string) error {
	var n int
	query := `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?`
	if s.postgres {
		query = `SELECT COUNT(*) FROM information_schema.columns WHERE table_name = $1 AND column_name = $2`
	}
	if err := s.db.QueryRowContext(ctx, query, table, column).Scan(&n); err != nil {
		return fmt.Errorf("migrate: look for %s.%s: %w", table, column, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, "ALTER TABLE "+table+" ADD COLUMN "+column+" "+def); err != nil {
		return fmt.Errorf("migrate: add %s.%s: %w", table, column, err)
	}
	return nil
}

// schema is Switchboard's own tables. Times are Unix nanoseconds, JSON is
// text, so one schema serves SQLite and Postgres.
const schema = `
CREATE TABLE IF NOT EXISTS sb_runs (
	id TEXT PRIMARY KEY,
	delivery_key TEXT UNIQUE,
	workflow TEXT NOT NULL,
	cloud TEXT NOT NULL DEFAULT '',
	state TEXT NOT NULL,
	request TEXT NOT NULL,
	plan TEXT NOT NULL,
	step_cursor INTEGER NOT NULL DEFAULT 0,
	scratch TEXT NOT NULL DEFAULT '',
	vars TEXT NOT NULL DEFAULT '',
	result TEXT NOT NULL DEFAULT '',
	error TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	finished_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sb_runs_state ON sb_runs (state);
CREATE INDEX IF NOT EXISTS sb_runs_finished ON sb_runs (finished_at);
CREATE TABLE IF NOT EXISTS sb_audit (
	id {{serial}},
	at BIGINT NOT NULL,
	run_id TEXT NOT NULL DEFAULT '',
	kind TEXT NOT NULL,
	actor TEXT NOT NULL DEFAULT '',
	channel TEXT NOT NULL DEFAULT '',
	subject TEXT NOT NULL DEFAULT '',
	outcome TEXT NOT NULL DEFAULT '',
	detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS sb_audit_at ON sb_audit (at);
CREATE TABLE IF NOT EXISTS sb_transcript (
	id {{serial}},
	at BIGINT NOT NULL,
	run_id TEXT NOT NULL DEFAULT '',
	channel_id TEXT NOT NULL,
	user_id TEXT NOT NULL DEFAULT '',
	kind TEXT NOT NULL,
	body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sb_transcript_channel ON sb_transcript (channel_id, id);
CREATE INDEX IF NOT EXISTS sb_transcript_at ON sb_transcript (at);
CREATE TABLE IF NOT EXISTS sb_messages (
	run_id TEXT NOT NULL,
	msg_key TEXT NOT NULL,
	body TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	sent_at BIGINT NOT NULL DEFAULT 0,
	via TEXT NOT NULL DEFAULT '',
	last_error TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (run_id, msg_key)
);
CREATE TABLE IF NOT EXISTS sb_deliveries (
	delivery_key TEXT PRIMARY KEY,
	seen_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sb_deliveries_seen ON sb_deliveries (seen_at);
CREATE TABLE IF NOT EXISTS sb_locks (
	lock_key TEXT PRIMARY KEY,
	run_id TEXT NOT NULL,
	acquired_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sb_locks_run ON sb_locks (run_id);
CREATE TABLE IF NOT EXISTS sb_approvals (
	id TEXT PRIMARY KEY,
	run_id TEXT NOT NULL,
	state TEXT NOT NULL,
	body TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sb_approvals_state ON sb_approvals (state);
CREATE TABLE IF NOT EXISTS sb_instances (
	cloud TEXT NOT NULL,
	id TEXT NOT NULL,
	body TEXT NOT NULL,
	seen_at BIGINT NOT NULL,
	settled_at BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (cloud, id)
);
CREATE TABLE IF NOT EXISTS sb_leases (
	name TEXT PRIMARY KEY,
	holder TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);
`

// q adapts a query written with ? placeholders to the database: Postgres
// wants $1, $2...
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// quietLogger passes River's warnings and errors on and drops its chatter.
func quietLogger(l *slog.Logger) *slog.Logger {
	return slog.New(levelFilter{l.Handler(), slog.LevelWarn})
}

type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{f.Handler.WithAttrs(a), f.min}
}

func (f levelFilter) WithGroup(n string) slog.Handler {
	return levelFilter{f.Handler.WithGroup(n), f.min}
}

// inTx runs fn in a transaction and commits it when fn returns nil.
//
// On SQLite every write transaction goes through the one group committer,
// whichever pool db names.
func (s *Store) inTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	if s.group != nil {
		err := s.group.do(ctx, fn)
		s.noteWrite(err)
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		s.noteWrite(err)
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		s.noteWrite(err)
		return err
	}
	err = tx.Commit()
	s.noteWrite(err)
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// column reads every row of a one-column query (rows, err as the query
// returned them) and closes it.
func column[T any](rows *sql.Rows, err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

var errNoRows = sql.ErrNoRows

func isNoRows(err error) bool { return errors.Is(err, errNoRows) }
