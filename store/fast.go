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
// re-check); the step's messages are written taken too and posted at once,
// the delivery recorded together with the end of the message's job.
//
// Nothing is lost on the way: a process that dies leaves the jobs "running"
// under its name, which the next start (SQLite) or another replica
// (Postgres, after the heartbeat lapses) makes available again, as with any
// job River had fetched. Whatever is not simple — a failure to retry, a
// throttled or failed post, a run waiting for an instance or a person, a
// shutdown — is handed to River in the state River itself would have left,
// and River's workers carry it on.
//
// Per /ec2 status this is three commits (the run, the step with its
// message, the delivery) instead of River's fetch, complete and poll for
// each of the run and its message.

// fastSteps bounds the steps one run takes on the fast path before the rest
// is left to River, so that a run that never waits cannot hold a worker.
const fastSteps = 50

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

// fastStep is one step of a run worked on the fast path: its job, and the
// messages its commit wrote, taken by this process, in order.
type fastStep struct {
	job      int64
	messages []fastMessage
}

type fastMessage struct {
	m      switchboard.Message
	job    int64
	intent bool // written with its intent to post on record
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
		// all this needs. Times in River's SQLite format.
		at := now.Round(time.Millisecond).Format("2006-01-02 15:04:05.000")
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
	// none of it. Times in River's SQLite format.
	_, err := tx.ExecContext(ctx, `UPDATE river_job SET state = 'completed', finalized_at = ? WHERE id = ? AND state = 'running'`,
		now.Round(time.Millisecond).Format("2006-01-02 15:04:05.000"), job)
	if err != nil {
		return fmt.Errorf("complete job %d: %w", job, err)
	}
	return nil
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
// job or parks it until the run's next re-check; a run going straight on
// keeps it.
func (s *Store) settleRunJob(ctx context.Context, tx *sql.Tx, job int64, run *switchboard.Run, out switchboard.Outcome) error {
	now := time.Now().UTC()
	var p *riverdriver.JobSetStateIfRunningParams
	switch {
	case run.State.Finished():
		return s.completeJob(ctx, tx, job)
	case out.Wait > 0:
		p = parked(job, now.Add(out.Wait))
	default:
		return nil
	}
	return setJobState(ctx, s.driver.UnwrapExecutor(tx), p)
}

// parked is a job snoozed until at, attempt 1 not counted (as River snoozes).
func parked(job int64, at time.Time) *riverdriver.JobSetStateIfRunningParams {
	if time.Until(at) <= schedulerInterval {
		return riverdriver.JobSetStateSnoozedAvailable(job, at, 0, nil)
	}
	return riverdriver.JobSetStateSnoozed(job, at, 0, nil)
}

// handBack gives a job this process holds to River: what err (a worker's
// return: nil, a snooze, a cancel or an error to retry) would have made of
// attempt 1. A job left alone because the process is stopping stays
// "running" and is recovered with the process's others.
func (s *Store) handBack(job int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now().UTC()
	var snooze *rivertype.JobSnoozeError
	var cancelled *rivertype.JobCancelError
	var p *riverdriver.JobSetStateIfRunningParams
	switch {
	case err == nil:
		p = riverdriver.JobSetStateCompleted(job, now, nil)
	case errors.As(err, &snooze):
		p = parked(job, now.Add(snooze.Duration))
	case errors.As(err, &cancelled):
		p = riverdriver.JobSetStateCancelled(job, now, attemptError(now, err), nil)
	default:
		// Attempt 1 failed: River's next try comes a second later, as the
		// workers' NextRetry says.
		p = riverdriver.JobSetStateErrorRetryable(job, now.Add(time.Second), attemptError(now, err), nil)
	}
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		serr := setJobState(ctx, s.driver.GetExecutor(), p)
		if serr == nil {
			return
		}
		select {
		case <-ctx.Done():
			// Left "running": recovered at the next start or by a replica.
			s.logger.Warn("hand a job to the queue", "job", job, "err", serr)
			return
		case <-time.After(wait):
		}
	}
}

func attemptError(at time.Time, err error) []byte {
	b, _ := json.Marshal(rivertype.AttemptError{At: at, Attempt: 1, Error: err.Error()})
	return b
}

// workFast works run (its job taken by this process; as written, see asRead)
// step by step until it finishes, parks or fails, posting each step's
// messages as it goes.
func (s *Store) workFast(job int64, run *switchboard.Run) {
	defer s.fast.give()
	ctx, cancel := context.WithTimeout(s.fast.ctx, 2*time.Minute)
	defer cancel()
	if run == nil {
		s.handBack(job, river.JobSnooze(0))
		return
	}
	var posted posted
	for i := 0; ; i++ {
		if i == fastSteps {
			s.handBack(job, river.JobSnooze(0))
			return
		}
		out, err := s.work.Advancer.Advance(ctx, run, s)
		if err != nil {
			s.logger.Warn("run will be retried", "run", run.ID, "attempt", 1, "err", err)
			s.handBackUnlessStopping(ctx, job, err)
			return
		}
		f := &fastStep{job: job}
		if err := s.commitOutcome(ctx, run, out, f); err != nil {
			s.handBackUnlessStopping(ctx, job, err)
			return
		}
		for _, fm := range f.messages {
			s.postFast(ctx, fm, &posted)
		}
		if run.State.Finished() || out.Wait > 0 {
			return
		}
	}
}

func (s *Store) handBackUnlessStopping(ctx context.Context, job int64, err error) {
	if s.fast.ctx.Err() != nil && ctx.Err() != nil {
		return
	}
	s.handBack(job, err)
}

// posted is what the fast path has posted of one run so far.
type posted struct {
	vias   []string
	thread string
	// behind says a message went to River's queue: the run's later ones
	// follow it there, where they wait for it.
	behind bool
}

// postFast posts one message of a run on the fast path, or hands it to
// River.
func (s *Store) postFast(ctx context.Context, fm fastMessage, p *posted) {
	if p.behind {
		s.handBack(fm.job, river.JobSnooze(0))
		return
	}
	m := fm.m
	if m.Thread {
		m.ThreadRef = p.thread
	}
	done := func(tx *sql.Tx) error { return s.completeJob(ctx, tx, fm.job) }
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
		return
	}
	var snooze *rivertype.JobSnoozeError
	var cancelled *rivertype.JobCancelError
	if !errors.As(err, &snooze) && !errors.As(err, &cancelled) {
		s.logger.Warn("message will be retried", "run", m.RunID, "message", m.Key, "err", err)
	}
	s.handBack(fm.job, err)
}
