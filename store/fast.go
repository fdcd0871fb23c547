package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"

	"github.com/switchboardhq/switchboard"
)

// The fast path. A run created while this process has a free worker is
// worked at once, here, instead of waiting for the job queue to fetch it:
// its job is written already taken by this process ("running", attempt 1,
// attempted by this client), in the same transaction as the run, exactly as
// if River had fetched it. Each step's outcome is committed together with
// what becomes of the job (finished, or parked until the run's next
// re-check). The step's messages have no job of their own: the run's job,
// still running, holds them (sb_messages.held) and is finished or parked
// with the last one's delivery; each is posted at once.
//
// Nothing is lost on the way: a process that dies leaves the run's job
// "running" under its name, which the next start (SQLite) or another
// replica (Postgres, after the heartbeat lapses) makes available again, as
// with any job River had fetched; River's run worker first gives the
// messages the job still held jobs of their own (adoptHeld). Whatever is not
// simple — a failure to retry, a throttled or failed post, a run waiting
// for an instance or a person, a shutdown — is handed to River in the state
// River itself would have left, and River's workers carry it on.
//
// Short waits (an instance changing state) are waited here too, as River's
// workers do (carry, in jobs.go).
//
// On SQLite the run's job is not even written: one process works the
// store, so a run on the fast path is marked unqueued (sb_runs.unqueued)
// instead, and its job row is written only if the run is handed to River
// (parked, retried, cancelled); a run that finishes here never has one. The
// next start gives every run still marked a job (queueUnqueued), as it
// makes a dead process's running jobs available again. Postgres keeps the
// job row: another replica takes it over when this one dies.
//
// Per /ec2 status this is three commits (the run, the step with its
// message, the delivery with the end of the run's job), each shared with
// whatever else commits at the same moment, instead of River's insert,
// fetch and completion of two jobs.

// fastPerWorker: the fast path works up to this many runs at once per
// River worker. A run on it mostly waits, for the one SQLite writer or
// for Slack, so it holds a goroutine and little else.
const fastPerWorker = 5

// schedulerInterval is River's: a job parked for less is made available at
// once with its time in the future, as River's own snooze does.
const schedulerInterval = 5 * time.Second

type fastPath struct {
	mu     sync.Mutex
	open   bool
	slots  chan struct{}
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

func (p *fastPath) start(workers int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.slots = make(chan struct{}, workers)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.open = true
}

// take reserves a worker, or reports that none is free (or that the process
// is stopping): the run then goes to River's queue.
func (p *fastPath) take() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.open {
		return false
	}
	select {
	case p.slots <- struct{}{}:
		p.wg.Add(1)
		return true
	default:
		return false
	}
}

func (p *fastPath) give() {
	<-p.slots
	p.wg.Done()
}

// stop takes no more runs and waits for those in flight until ctx ends,
// then cancels them: their jobs stay "running" and are recovered as a dead
// process's are.
func (p *fastPath) stop(ctx context.Context) {
	p.mu.Lock()
	if !p.open {
		p.mu.Unlock()
		return
	}
	p.open = false
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}
	p.cancel()
}

// fastRun is a run worked on the fast path: its job, whether the current
// step's commit parks (or finishes) it, the messages that commit wrote
// (taken by this process, in order) and what has been posted so far.
type fastRun struct {
	job      int64 // 0: the run's job is River's (carry from runWorker); rowless: not written
	runID    string
	attempt  int
	park     bool
	messages []fastMessage
	// settle is what becomes of the run's job once the step's messages,
	// held by it, are delivered or queued: the step's commit left it
	// running.
	settle *settlement
	posted posted
	// known says posted holds all the run's messages: the run is new.
	// Otherwise what earlier attempts posted is read before the first post.
	known bool
}

// rowless is the job of a run on the fast path on SQLite: held by this
// process, with no row until the run is handed to River (materialize).
const rowless int64 = -1

// settlement is the end of a run's job: finished, or parked for wait.
type settlement struct {
	finished bool
	wait     time.Duration
}

type fastMessage struct {
	m       switchboard.Message
	job     int64 // 0: held by the run's job
	intent  bool  // written with its intent to post on record
	created int64 // its created_at
}

// posted is what the fast path has posted of one run so far.
type posted struct {
	vias   []string
	thread string
	// behind says a message went to River's queue: the run's later ones
	// follow it there, where they wait for it.
	behind bool
}

// step begins a step: park says whether its commit parks the run's job.
func (f *fastRun) step(park bool) {
	f.park = park
	f.messages = f.messages[:0]
}

// post posts the messages the step's commit wrote, in order; the last
// one's record settles the run's job when the commit left that to it.
func (f *fastRun) post(ctx context.Context, s *Store) {
	for i, fm := range f.messages {
		if !f.known {
			f.posted = s.readPosted(ctx, fm)
			f.known = true
		}
		var settle *settlement
		if i == len(f.messages)-1 {
			settle = f.settle
		}
		s.postFast(ctx, f, fm, settle)
	}
}

// readPosted reads what was posted of fm's run before fm: how its delivered
// messages went and its thread; a message still on its way puts fm behind
// it, in River's queue.
func (s *Store) readPosted(ctx context.Context, fm fastMessage) posted {
	var p posted
	var waiting int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM sb_messages WHERE run_id = ? AND sent_at = 0 AND created_at < ?`),
		fm.m.RunID, fm.created).Scan(&waiting)
	if err == nil && waiting == 0 {
		p.vias, err = s.deliveredVia(ctx, fm.m.RunID)
	}
	if err == nil && waiting == 0 {
		err = s.db.QueryRowContext(ctx, s.q(`SELECT ts FROM sb_messages WHERE run_id = ? AND ts <> '' ORDER BY sent_at LIMIT 1`), fm.m.RunID).Scan(&p.thread)
		if isNoRows(err) {
			err = nil
		}
	}
	p.behind = err != nil || waiting > 0
	return p
}

// insertTaken writes a job for args already taken by this process.
func (s *Store) insertTaken(ctx context.Context, tx *sql.Tx, args river.JobArgs, opts river.InsertOpts) (int64, error) {
	enc, err := json.Marshal(args)
	if err != nil {
		return 0, err
	}
	queue := opts.Queue
	if queue == "" {
		queue = river.QueueDefault
	}
	now := time.Now().UTC()
	if !s.postgres {
		// River's own insert returns and decodes the whole row; the id is
		// all this needs.
		at := riverTime(now)
		by, err := json.Marshal([]string{s.river.ID()})
		if err != nil {
			return 0, err
		}
		var id int64
		err = tx.QueryRowContext(ctx, `INSERT INTO river_job (args, attempt, attempted_at, attempted_by, created_at, kind, max_attempts, metadata, priority, queue, scheduled_at, state, tags)
			VALUES (jsonb(?), 1, ?, jsonb(?), ?, ?, ?, jsonb('{}'), 1, ?, ?, 'running', jsonb('[]')) RETURNING id`,
			enc, at, by, at, args.Kind(), opts.MaxAttempts, queue, at).Scan(&id)
		return id, err
	}
	row, err := s.driver.UnwrapExecutor(tx).JobInsertFull(ctx, &riverdriver.JobInsertFullParams{
		Attempt: 1, AttemptedAt: &now, AttemptedBy: []string{s.river.ID()},
		CreatedAt: &now, ScheduledAt: &now, EncodedArgs: enc, Kind: args.Kind(),
		MaxAttempts: opts.MaxAttempts, Priority: 1, Queue: queue,
		State: rivertype.JobStateRunning, Tags: []string{},
	})
	if err != nil {
		return 0, err
	}
	return row.ID, nil
}

// completeJob marks a job this process holds completed, in tx, as River's
// executor would.
func (s *Store) completeJob(ctx context.Context, tx *sql.Tx, job int64) error {
	now := time.Now().UTC()
	if s.postgres {
		return setJobState(ctx, s.driver.UnwrapExecutor(tx), riverdriver.JobSetStateCompleted(job, now, nil))
	}
	// River's own statement for this handles cancellation and errors and
	// returns the whole row, in a savepoint of its own; a completion needs
	// none of it.
	_, err := tx.ExecContext(ctx, `UPDATE river_job SET state = 'completed', finalized_at = ? WHERE id = ? AND state = 'running'`, riverTime(now), job)
	if err != nil {
		return fmt.Errorf("complete job %d: %w", job, err)
	}
	return nil
}

// riverTime is t as River's SQLite driver writes times.
func riverTime(t time.Time) string {
	return t.UTC().Round(time.Millisecond).Format("2006-01-02 15:04:05.000")
}

// setJobState moves a job this process holds on, as River's executor would.
func setJobState(ctx context.Context, exec riverdriver.Executor, p *riverdriver.JobSetStateIfRunningParams) error {
	_, err := exec.JobSetStateIfRunningMany(ctx, &riverdriver.JobSetStateIfRunningManyParams{
		ID: []int64{p.ID}, Attempt: []*int{p.Attempt}, ErrData: [][]byte{p.ErrData},
		FinalizedAt: []*time.Time{p.FinalizedAt}, MetadataDoMerge: []bool{p.MetadataDoMerge},
		MetadataUpdates: [][]byte{p.MetadataUpdates}, ScheduledAt: []*time.Time{p.ScheduledAt},
		State: []rivertype.JobState{p.State},
	})
	if err != nil {
		return fmt.Errorf("update job %d: %w", p.ID, err)
	}
	return nil
}

// settleRunJob, in the transaction of a step's outcome, finishes the run's
// job or parks it until the run's next re-check; a run going straight on,
// or waiting in place, keeps it.
func (s *Store) settleRunJob(ctx context.Context, tx *sql.Tx, f *fastRun, run *switchboard.Run, out switchboard.Outcome) error {
	if f.job == 0 || !run.State.Finished() && !f.park {
		// River's to settle, or the run goes on here.
		return nil
	}
	end := settlement{finished: run.State.Finished(), wait: out.Wait}
	if len(f.messages) > 0 {
		// The step's messages are held by the job: it ends with the last
		// one's delivery.
		f.settle = &end
		return nil
	}
	return s.settleJob(ctx, tx, f, end)
}

// settleJob finishes or parks the run's job, in tx.
func (s *Store) settleJob(ctx context.Context, tx *sql.Tx, f *fastRun, end settlement) error {
	if end.finished && f.job == rowless {
		return s.unmark(ctx, tx, f.runID)
	}
	job, err := s.materialize(ctx, tx, f)
	if err != nil {
		return err
	}
	if end.finished {
		return s.completeJob(ctx, tx, job)
	}
	return setJobState(ctx, s.driver.UnwrapExecutor(tx), parked(job, f.attempt, time.Now().UTC().Add(end.wait)))
}

// materialize returns the id of the run's job, in tx, first writing it,
// taken by this process, when the run has none (rowless): it is being
// handed to River. f is left as it was: tx may be run again.
func (s *Store) materialize(ctx context.Context, tx *sql.Tx, f *fastRun) (int64, error) {
	if f.job != rowless {
		return f.job, nil
	}
	job, err := s.insertTaken(ctx, tx, RunArgs{RunID: f.runID}, RunArgs{}.InsertOpts())
	if err != nil {
		return 0, fmt.Errorf("enqueue run: %w", err)
	}
	return job, s.unmark(ctx, tx, f.runID)
}

// unmark ends a rowless run's claim on the next start: it finished, or it
// has a job now.
func (s *Store) unmark(ctx context.Context, tx *sql.Tx, runID string) error {
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE sb_runs SET unqueued = 0 WHERE id = ?`), runID); err != nil {
		return fmt.Errorf("finish run %s: %w", runID, err)
	}
	return nil
}

// queueUnqueued gives every run left unqueued (its process stopped or died
// while working it on the fast path) a job, for River's run worker to carry
// on; it runs at start, before River does.
func (s *Store) queueUnqueued(ctx context.Context) error {
	return s.inTx(ctx, s.db, func(tx *sql.Tx) error {
		ids, err := column[string](tx.QueryContext(ctx, s.q(`SELECT id FROM sb_runs WHERE unqueued = 1`)))
		if err != nil {
			return fmt.Errorf("read runs cut off: %w", err)
		}
		for _, id := range ids {
			if _, err := s.river.InsertTx(ctx, tx, RunArgs{RunID: id}, nil); err != nil {
				return fmt.Errorf("enqueue run %s: %w", id, err)
			}
			if err := s.unmark(ctx, tx, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// parked is a job snoozed until at, the attempt not counted (as River
// snoozes).
func parked(job int64, attempt int, at time.Time) *riverdriver.JobSetStateIfRunningParams {
	if time.Until(at) <= schedulerInterval {
		return riverdriver.JobSetStateSnoozedAvailable(job, at, attempt-1, nil)
	}
	return riverdriver.JobSetStateSnoozed(job, at, attempt-1, nil)
}

// handBack gives a job this process holds to River: what err (a worker's
// return: nil, a snooze, a cancel or an error to retry) would have made of
// the attempt.
func (s *Store) handBack(job int64, attempt int, err error) {
	s.retryHandBack(func(ctx context.Context) error {
		return setJobState(ctx, s.driver.GetExecutor(), handedBack(job, attempt, err))
	}, "job", job)
}

// handBackRun hands the job of a run on the fast path back to River,
// writing it first if the run has none (rowless).
func (s *Store) handBackRun(f *fastRun, err error) {
	if f.job != rowless {
		s.handBack(f.job, f.attempt, err)
		return
	}
	s.retryHandBack(func(ctx context.Context) error {
		return s.inTx(ctx, s.req, func(tx *sql.Tx) error {
			if err == nil {
				return s.unmark(ctx, tx, f.runID)
			}
			job, merr := s.materialize(ctx, tx, f)
			if merr != nil {
				return merr
			}
			return setJobState(ctx, s.driver.UnwrapExecutor(tx), handedBack(job, f.attempt, err))
		})
	}, "run", f.runID)
}

// handedBack is the state River would leave a job in after an attempt
// that returned err.
func handedBack(job int64, attempt int, err error) *riverdriver.JobSetStateIfRunningParams {
	now := time.Now().UTC()
	var snooze *rivertype.JobSnoozeError
	var cancelled *rivertype.JobCancelError
	switch {
	case err == nil:
		return riverdriver.JobSetStateCompleted(job, now, nil)
	case errors.As(err, &snooze):
		return parked(job, attempt, now.Add(snooze.Duration))
	case errors.As(err, &cancelled):
		return riverdriver.JobSetStateCancelled(job, now, attemptError(now, attempt, err), nil)
	default:
		// River tries again as the workers' NextRetry says.
		return riverdriver.JobSetStateErrorRetryable(job, now.Add(retryAfter(attempt)), attemptError(now, attempt, err), nil)
	}
}

// retryHandBack runs write until it succeeds, for ten seconds at most;
// what names the job (or run) in the log if it never does.
func (s *Store) retryHandBack(write func(context.Context) error, what ...any) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		serr := write(ctx)
		if serr == nil {
			return
		}
		select {
		case <-ctx.Done():
			// Left "running" (or unqueued): recovered at the next start or
			// by a replica.
			s.logger.Warn("hand a job to the queue", append(what, "err", serr)...)
			return
		case <-time.After(wait):
		}
	}
}

// handBackUnlessStopping hands a run's job back, or, when the process is
// stopping, leaves it running (or unqueued) to be recovered with the
// process's others.
func (s *Store) handBackUnlessStopping(f *fastRun, err error) {
	if s.fast.ctx.Err() != nil {
		return
	}
	s.handBackRun(f, err)
}

func attemptError(at time.Time, attempt int, err error) []byte {
	b, _ := json.Marshal(rivertype.AttemptError{At: at, Attempt: attempt, Error: err.Error()})
	return b
}

// workFast works a run whose job this process holds (attempt attempt) as
// River's worker would (carry), committing each step together with what
// becomes of the job and posting each step's messages as it goes. run is
// the run as written (see asRead), or nil to read it.
func (s *Store) workFast(job int64, attempt int, runID string, run *switchboard.Run) {
	defer s.fast.give()
	ctx, cancel := context.WithTimeout(s.fast.ctx, 2*time.Minute)
	defer cancel()
	// A run just created (handed over as written) has posted nothing yet.
	f := &fastRun{job: job, runID: runID, attempt: attempt, known: run != nil}
	if run == nil {
		var err error
		run, err = s.GetRun(ctx, runID)
		if switchboard.ErrorCode(err) == switchboard.ENOTFOUND {
			err = river.JobCancel(err)
		}
		if err != nil {
			s.handBackUnlessStopping(f, err)
			return
		}
	}
	if run.State.Finished() {
		s.handBackRun(f, nil)
		return
	}
	err := s.carry(ctx, run, attempt, RunArgs{}.InsertOpts().MaxAttempts, f)
	var snooze *rivertype.JobSnoozeError
	switch {
	case err == nil:
		// Finished in the last step's commit.
	case errors.As(err, &snooze) && f.park:
		// Parked in the last step's commit.
	default:
		s.handBackUnlessStopping(f, err)
	}
}

// postFast posts one message of a run on the fast path, or hands it to
// River; settle, when set, is settled with the message's record.
func (s *Store) postFast(ctx context.Context, f *fastRun, fm fastMessage, settle *settlement) {
	p := &f.posted
	if p.behind {
		s.queueMessage(ctx, f, fm, nil, settle)
		return
	}
	m := fm.m
	if m.Thread {
		m.ThreadRef = p.thread
	}
	done := func(tx *sql.Tx) error {
		if fm.job != 0 {
			return s.completeJob(ctx, tx, fm.job)
		}
		if settle != nil {
			return s.settleJob(ctx, tx, f, *settle)
		}
		return nil
	}
	d, err := s.deliver(ctx, m, p.vias, fm.intent, 1, MessageArgs{}.InsertOpts().MaxAttempts, done)
	if err == nil {
		if d.Via != "" {
			p.vias = append(p.vias, d.Via)
		}
		if p.thread == "" {
			p.thread = d.Ref
		}
		return
	}
	p.behind = true
	if ctx.Err() != nil && s.fast.ctx.Err() != nil {
		// Stopping: a held message stays held by the run's job, which the
		// next start or another replica recovers (adoptHeld).
		return
	}
	var snooze *rivertype.JobSnoozeError
	var cancelled *rivertype.JobCancelError
	if !errors.As(err, &snooze) && !errors.As(err, &cancelled) {
		s.logger.Warn("message will be retried", "run", m.RunID, "message", m.Key, "err", err)
	}
	s.queueMessage(ctx, f, fm, err, settle)
}

// queueMessage gives a message the fast path did not deliver to River's
// message worker, as err (nil: behind an earlier one; a snooze; a cancel,
// the message given up and recorded; an error to retry) says, and settles
// the run's job with it when settle is set.
func (s *Store) queueMessage(ctx context.Context, f *fastRun, fm fastMessage, err error, settle *settlement) {
	if fm.job != 0 {
		s.handBack(fm.job, 1, err)
		return
	}
	var snooze *rivertype.JobSnoozeError
	var cancelled *rivertype.JobCancelError
	at := time.Now()
	switch {
	case err == nil:
	case errors.As(err, &snooze):
		at = at.Add(snooze.Duration)
	case errors.As(err, &cancelled):
		at = time.Time{} // given up: no job
	default:
		at = at.Add(retryAfter(1))
	}
	qerr := s.inTx(context.WithoutCancel(ctx), s.req, func(tx *sql.Tx) error {
		if !at.IsZero() {
			if err := s.enqueueHeld(ctx, tx, fm.m.RunID, fm.m.Key, at); err != nil {
				return err
			}
		}
		if settle != nil {
			return s.settleJob(ctx, tx, f, *settle)
		}
		return nil
	})
	if qerr != nil {
		// Still held by the run's job, which River's stuck-job rescue or
		// the next start recovers.
		s.logger.Warn("queue a message for delivery", "run", fm.m.RunID, "message", fm.m.Key, "err", qerr)
	}
}

// enqueueHeld gives a held message a job of its own, due at at.
func (s *Store) enqueueHeld(ctx context.Context, tx *sql.Tx, runID, key string, at time.Time) error {
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE sb_messages SET held = 0 WHERE run_id = ? AND msg_key = ?`), runID, key); err != nil {
		return fmt.Errorf("queue message %s/%s: %w", runID, key, err)
	}
	var opts *river.InsertOpts
	if time.Until(at) > 0 {
		opts = &river.InsertOpts{ScheduledAt: at}
	}
	if _, err := s.river.InsertTx(ctx, tx, MessageArgs{RunID: runID, Key: key}, opts); err != nil {
		return fmt.Errorf("queue message %s/%s: %w", runID, key, err)
	}
	return nil
}

// adoptHeld gives every message still held by runID's job (its process
// stopped or died before delivering them) a job of its own. River's run
// worker does this before anything else, so a recovered run job never
// leaves a message behind.
func (s *Store) adoptHeld(ctx context.Context, runID string) error {
	return s.inTx(ctx, s.db, func(tx *sql.Tx) error {
		keys, err := column[string](tx.QueryContext(ctx, s.q(`SELECT msg_key FROM sb_messages WHERE run_id = ? AND held = 1 AND sent_at = 0 ORDER BY created_at`), runID))
		if err != nil {
			return fmt.Errorf("read held messages of run %s: %w", runID, err)
		}
		for _, k := range keys {
			if err := s.enqueueHeld(ctx, tx, runID, k, time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
}
