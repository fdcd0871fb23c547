package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"modernc.org/sqlite"
)

// openSQLite opens a SQLite pool whose connections keep their prepared
// statements. database/sql prepares a statement for every Exec and Query and
// throws it away; SQLite's parser then costs about a third of an ack's CPU,
// in our queries and River's alike. Each connection here keeps up to
// maxCachedStatements of them by SQL text.
//
// Connections opened with the same gate take turns to write through it;
// high marks the request path's pool, whose writers go first.
func openSQLite(dsn string, gate *writeGate, high bool, counts *SQLCounts) *sql.DB {
	return sql.OpenDB(stmtCachingConnector{dsn: dsn, driver: &sqlite.Driver{}, gate: gate, high: high, counts: counts})
}

// SQLCounts counts what a SQLite store asks of the database: statements
// (ours and River's) and committed transactions, each of which is one write
// to the WAL. They are the per-command cost docs/BENCHMARKS.md states.
type SQLCounts struct {
	Statements atomic.Int64
	Commits    atomic.Int64
}

const maxCachedStatements = 256

type stmtCachingConnector struct {
	dsn    string
	driver *sqlite.Driver
	gate   *writeGate
	high   bool
	counts *SQLCounts
}

func (c stmtCachingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.driver.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &cachingConn{inner: conn, stmts: map[string]*cachedStmt{}, gate: c.gate, high: c.high, counts: c.counts}, nil
}

func (c stmtCachingConnector) Driver() driver.Driver { return c.driver }

// innerConn is what the SQLite driver's connection offers beyond driver.Conn.
type innerConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// cachingConn is used by one goroutine at a time, as database/sql
// guarantees for a driver.Conn, so it needs no lock.
type cachingConn struct {
	inner  driver.Conn
	stmts  map[string]*cachedStmt
	order  []string // oldest first, for eviction
	gate   *writeGate
	high   bool
	inTx   bool // holds the gate for a transaction
	counts *SQLCounts
}

type cachedStmt struct {
	stmt driver.Stmt
	busy bool // its rows are open: a second use needs a statement of its own
}

var (
	_ driver.ExecerContext  = (*cachingConn)(nil)
	_ driver.QueryerContext = (*cachingConn)(nil)
	_ driver.ConnBeginTx    = (*cachingConn)(nil)
	_ driver.Pinger         = (*cachingConn)(nil)
)

func (c *cachingConn) conn() innerConn { return c.inner.(innerConn) }

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) { return c.inner.Prepare(query) }

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.conn().PrepareContext(ctx, query)
}

func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx takes the write gate for the whole transaction: with
// _txlock=immediate every transaction is a writer.
func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if err := c.gate.acquire(ctx, c.high); err != nil {
		return nil, err
	}
	tx, err := c.conn().BeginTx(ctx, opts)
	if err != nil {
		c.gate.release()
		return nil, err
	}
	c.inTx = true
	return &gatedTx{Tx: tx, conn: c}, nil
}

func (c *cachingConn) endTx() {
	if c.inTx {
		c.inTx = false
		c.gate.release()
	}
}

func (c *cachingConn) Ping(ctx context.Context) error { return c.conn().Ping(ctx) }

func (c *cachingConn) ResetSession(ctx context.Context) error { return c.conn().ResetSession(ctx) }

func (c *cachingConn) IsValid() bool { return c.conn().IsValid() }

func (c *cachingConn) Close() error {
	var errs []error
	for _, cs := range c.stmts {
		errs = append(errs, cs.stmt.Close())
	}
	c.stmts = nil
	errs = append(errs, c.inner.Close())
	return errors.Join(errs...)
}

// cached returns the connection's statement for query, preparing it the
// first time.
func (c *cachingConn) cached(ctx context.Context, query string) (*cachedStmt, error) {
	if cs, ok := c.stmts[query]; ok {
		return cs, nil
	}
	st, err := c.conn().PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if len(c.order) >= maxCachedStatements {
		oldest := c.order[0]
		c.order = c.order[1:]
		if old := c.stmts[oldest]; old != nil && !old.busy {
			_ = old.stmt.Close()
			delete(c.stmts, oldest)
		}
	}
	cs := &cachedStmt{stmt: st}
	c.stmts[query] = cs
	c.order = append(c.order, query)
	return cs, nil
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.counts.Statements.Add(1)
	cs, err := c.cached(ctx, query)
	if err != nil {
		return nil, err
	}
	if !c.inTx {
		// An Exec outside a transaction is a write of its own.
		if err := c.gate.acquire(ctx, c.high); err != nil {
			return nil, err
		}
		defer c.gate.release()
	}
	if cs.busy {
		return c.conn().(driver.ExecerContext).ExecContext(ctx, query, args)
	}
	return cs.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.counts.Statements.Add(1)
	cs, err := c.cached(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs.busy {
		return c.conn().(driver.QueryerContext).QueryContext(ctx, query, args)
	}
	rows, err := cs.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.busy = true
	return &cachedRows{Rows: rows, stmt: cs}, nil
}

// cachedRows frees its statement for the next use when closed.
type cachedRows struct {
	driver.Rows
	stmt *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.stmt.busy = false
	return err
}

// writeGate lets one transaction at a time write the SQLite file, and lets
// the request path (acks) go before background work. SQLite serializes
// writers itself, but a writer that finds the file locked sleeps in steps of
// 1, 2, 5, 10... ms; queueing here instead hands the lock over at once. It is
// an optimisation only: SQLite's own locking still guarantees correctness
// for writes that bypass the gate (autocommit queries).
type writeGate struct {
	mu        sync.Mutex
	held      bool
	high, low []chan struct{}
	// skipped counts grants to the request path while background work
	// waited; past a few, background work gets a turn so answers keep
	// flowing under a flood of commands.
	skipped int
	// wrote, when set, hears (without blocking) that a write ended.
	wrote chan struct{}
}

const maxHighGrantsInARow = 4

func (g *writeGate) acquire(ctx context.Context, high bool) error {
	g.mu.Lock()
	if !g.held {
		g.held = true
		g.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if high {
		g.high = append(g.high, ch)
	} else {
		g.low = append(g.low, ch)
	}
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		removed := remove(&g.high, ch) || remove(&g.low, ch)
		g.mu.Unlock()
		if !removed { // granted as we gave up: pass it on
			g.release()
		}
		return ctx.Err()
	}
}

func remove(q *[]chan struct{}, ch chan struct{}) bool {
	for i, c := range *q {
		if c == ch {
			*q = append((*q)[:i], (*q)[i+1:]...)
			return true
		}
	}
	return false
}

func (g *writeGate) release() {
	if g.wrote != nil {
		select {
		case g.wrote <- struct{}{}:
		default:
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	next := func(q *[]chan struct{}) {
		ch := (*q)[0]
		*q = (*q)[1:]
		close(ch) // the gate stays held: handed over
	}
	switch {
	case len(g.high) > 0 && (len(g.low) == 0 || g.skipped < maxHighGrantsInARow):
		if len(g.low) > 0 {
			g.skipped++
		}
		next(&g.high)
	case len(g.low) > 0:
		g.skipped = 0
		next(&g.low)
	default:
		g.held = false
	}
}

// gatedTx releases the write gate when the transaction ends.
type gatedTx struct {
	driver.Tx
	conn *cachingConn
}

func (t *gatedTx) Commit() error {
	defer t.conn.endTx()
	t.conn.counts.Commits.Add(1)
	return t.Tx.Commit()
}

func (t *gatedTx) Rollback() error {
	defer t.conn.endTx()
	return t.Tx.Rollback()
}

// groupCommit carries the write transactions of concurrent callers on one
// SQLite connection and commits those that arrive while one is in progress
// together, in one transaction: when one caller's work fails, the group is
// rolled back and each is run again on its own, so that only that one
// fails; a commit that fails fails them all, none of them written. Every commit writes each page it touched to
// the WAL, and concurrent acks, step outcomes and deliveries touch the same
// few pages (the tables' and indexes' last leaves), so committing them
// together writes a fraction of the pages and hands the writer lock over a
// fraction as often.
type groupCommit struct {
	db   *sql.DB
	reqs chan *groupReq
	quit chan struct{}
	done chan struct{}
	// mu orders requests against close: none is queued once closed.
	mu     sync.Mutex
	closed bool
}

type groupReq struct {
	ctx  context.Context
	fn   func(*sql.Tx) error
	err  error
	done chan struct{}
}

// maxGroup bounds how many callers one commit carries.
const maxGroup = 64

func newGroupCommit(db *sql.DB) *groupCommit {
	g := &groupCommit{db: db, reqs: make(chan *groupReq, maxGroup), quit: make(chan struct{}), done: make(chan struct{})}
	go g.loop()
	return g
}

// do runs fn in a transaction, alone or with others', and returns once it
// is committed (nil) or not (the error).
func (g *groupCommit) do(ctx context.Context, fn func(*sql.Tx) error) error {
	r := &groupReq{ctx: ctx, fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errStoreClosed
	}
	select {
	case g.reqs <- r:
	case <-ctx.Done():
		g.mu.Unlock()
		return ctx.Err()
	}
	g.mu.Unlock()
	<-r.done // once queued, a request is always answered
	return r.err
}

var errStoreClosed = errors.New("the store is closed")

func (g *groupCommit) close() {
	g.mu.Lock()
	g.closed = true
	close(g.quit)
	g.mu.Unlock()
	<-g.done
}

func (g *groupCommit) loop() {
	defer close(g.done)
	batch := make([]*groupReq, 0, maxGroup)
	for {
		select {
		case r := <-g.reqs:
			batch = append(batch[:0], r)
		case <-g.quit:
			// Whatever was queued before the close is refused, not left
			// waiting.
			for {
				select {
				case r := <-g.reqs:
					r.err = errStoreClosed
					close(r.done)
				default:
					return
				}
			}
		}
		if len(g.reqs) == 0 {
			// Alone so far: let the goroutines about to ask run first. The
			// ack, step or delivery next in line is usually a moment away,
			// and a commit shared costs about what one alone does (under
			// the closed loop: 0.3 commits per command instead of 0.55,
			// and a tenth less CPU).
			runtime.Gosched()
		}
	more:
		for len(batch) < maxGroup {
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		g.commit(batch)
		for _, r := range batch {
			close(r.done)
		}
	}
}

func (g *groupCommit) commit(batch []*groupReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		live = append(live, r)
	}
	if len(live) > 1 && g.together(live) {
		return
	}
	// Alone, or again one by one after one of the group failed.
	for _, r := range live {
		g.alone(r)
	}
}

// together runs every request of the group in one transaction and commits
// it; it reports false, having rolled everything back, when one of them
// failed, so that each can be run again on its own (the one that failed
// fails alone). Requests are written to be run again: they set what they
// return, they do not append to it. A failed commit fails them all.
func (g *groupCommit) together(live []*groupReq) bool {
	tx, err := g.db.BeginTx(context.Background(), nil)
	if err != nil {
		return false
	}
	for _, r := range live {
		if err := r.fn(tx); err != nil {
			_ = tx.Rollback()
			return false
		}
	}
	if err := tx.Commit(); err != nil {
		for _, r := range live {
			r.err = fmt.Errorf("commit: %w", err)
		}
	}
	return true
}

func (g *groupCommit) alone(r *groupReq) {
	tx, err := g.db.BeginTx(context.Background(), nil)
	if err != nil {
		r.err = fmt.Errorf("begin: %w", err)
		return
	}
	if r.err = r.fn(tx); r.err != nil {
		_ = tx.Rollback()
		return
	}
	if err := tx.Commit(); err != nil {
		r.err = fmt.Errorf("commit: %w", err)
	}
}

// checkpointAfter is how many frames the WAL may hold that are not yet in
// the database file before the checkpointer copies them: SQLite's own
// default for the checkpoint it would otherwise run itself.
const checkpointAfter = 1000

// checkpointBackstop is where SQLite checkpoints in the committing
// connection after all, should the checkpointer fall that far behind (the
// WAL then holds about 40 MB).
const checkpointBackstop = 10 * checkpointAfter

// checkpointer copies the WAL's pages into the database file in the
// background, on a connection of its own, once the WAL holds
// checkpointAfter frames not yet copied. SQLite would otherwise do it in
// the connection whose commit crossed the mark, and every write waits
// behind that commit for the copy and its two fsyncs: 10–20 ms every
// thousand pages under load, several times a second (on a store with a
// long history, whose pages are scattered, longer). A passive checkpoint
// takes no lock a writer needs.
//
// It checks after writes only, so an idle store costs nothing, and a store
// that has written fewer than checkpointAfter frames since the WAL last
// started over is left as SQLite leaves it: its WAL only grows.
type checkpointer struct {
	path   string // the database file; its wal-index is path + "-shm"
	conn   driver.Conn
	gate   *writeGate
	wrote  chan struct{}
	quit   chan struct{}
	done   chan struct{}
	logger *slog.Logger
	shm    *os.File
	failed bool // the last checkpoint failed (logged once until one succeeds)
}

func newCheckpointer(path, dsn string, gate *writeGate, logger *slog.Logger) (*checkpointer, error) {
	conn, err := (&sqlite.Driver{}).Open(dsn)
	if err != nil {
		return nil, err
	}
	c := &checkpointer{path: path, conn: conn, gate: gate, wrote: gate.wrote, quit: make(chan struct{}), done: make(chan struct{}), logger: logger}
	go c.loop()
	return c, nil
}

func (c *checkpointer) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.wrote:
		case <-c.quit:
			return
		}
		if c.pending() < checkpointAfter {
			continue
		}
		err := c.checkpoint()
		switch {
		case err != nil && !c.failed:
			c.logger.Warn("checkpoint of the SQLite WAL failed; it is tried again after the next write", "err", err)
			c.failed = true
		case err == nil && c.failed:
			c.logger.Info("checkpoint of the SQLite WAL succeeded again")
			c.failed = false
		}
	}
}

// checkpoint copies the WAL's frames into the database file while writers
// go on, then once more holding the write gate, for the frames written
// meanwhile: the writer after it then finds every frame copied and starts
// the WAL over from its beginning. Without that second pass, under a
// steady load the WAL would never be found all copied and would grow.
func (c *checkpointer) checkpoint() error {
	exec := c.conn.(driver.ExecerContext)
	if _, err := exec.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)", nil); err != nil {
		return err
	}
	if err := c.gate.acquire(context.Background(), false); err != nil {
		return err
	}
	defer c.gate.release()
	_, err := exec.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)", nil)
	return err
}

// pending reads how many frames the WAL holds that are not yet in the
// database file from the wal-index header (mxFrame at byte 16, the
// checkpoint's nBackfill at byte 96, in the machine's byte order; see
// SQLite's "WAL-mode file format"). The read takes no lock, so it may see
// a header being written; it decides only whether to checkpoint now.
func (c *checkpointer) pending() uint32 {
	if c.shm == nil {
		f, err := os.Open(c.path + "-shm")
		if err != nil {
			return 0
		}
		c.shm = f
	}
	var hdr [100]byte
	if _, err := c.shm.ReadAt(hdr[:], 0); err != nil {
		return 0
	}
	mx, backfilled := binary.NativeEndian.Uint32(hdr[16:]), binary.NativeEndian.Uint32(hdr[96:])
	if backfilled > mx {
		return 0
	}
	return mx - backfilled
}

func (c *checkpointer) close() {
	close(c.quit)
	<-c.done
	if c.shm != nil {
		c.shm.Close()
	}
	c.conn.Close()
}
