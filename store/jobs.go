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

	"github.com/switchboardhq/switchboard"
)

// RunArgs is the job that advances a run.
type RunArgs struct {
	RunID string `json:"run_id"`
}

func (RunArgs) Kind() string { return "run" }

func (RunArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 10} }

// MessageArgs is the job that delivers one message; the message itself is in
// sb_messages, written in the same transaction.
type MessageArgs struct {
	RunID string `json:"run_id"`
	Key   string `json:"key"`
}

func (MessageArgs) Kind() string { return "message" }

// Messages have a queue of their own, so an answer never waits behind a
// backlog of runs.
func (MessageArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 12, Queue: queueMessages}
}

const queueMessages = "messages"

// Work is what the job workers need from the rest of Switchboard.
type Work struct {
	Advancer switchboard.Advancer
	// Messengers deliver messages by the source of the run's request
	// (slack, socket, console...), each platform by its own rules;
	// Messenger delivers those of any other source (runs started by a
	// schedule, a mail, an event). A message with neither fails, recorded
	// and audited.
	Messengers map[string]switchboard.Messenger
	Messenger  switchboard.Messenger
	Meter      switchboard.Meter
	// Events starts the workflows a schedule tick triggers.
	Events switchboard.EventHandler
}

func (s *Store) newRiver(opts Options) error {
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &runWorker{s: s}); err != nil {
		return err
	}
	mw := &messageWorker{s: s}
	if err := river.AddWorkerSafely(workers, mw); err != nil {
		return err
	}
	if err := river.AddWorkerSafely(workers, &scheduleWorker{s: s}); err != nil {
		return err
	}
	if err := river.AddWorkerSafely(workers, &pruneWorker{s: s, r: opts.Retention}); err != nil {
		return err
	}
	periodic := periodicJobs(opts.Schedules)
	if prune := pruneJob(opts.Retention); prune != nil {
		periodic = append(periodic, prune)
	}
	n := opts.Workers
	if n <= 0 {
		n = 20
	}
	s.workers = n
	cfg := &river.Config{
		Queues:     map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: n}, queueMessages: {MaxWorkers: n}},
		Workers:    workers,
		Logger:     quietLogger(s.logger),
		JobTimeout: 2 * time.Minute,
		// A replica that died mid-job leaves it "running"; the leader hands
		// it to another replica after this long.
		RescueStuckJobsAfter: 3 * time.Minute,
		FetchCooldown:        10 * time.Millisecond,
		PeriodicJobs:         periodic,
		ID:                   opts.ClientID,
	}
	if !s.postgres {
		// New runs and their messages are worked where they are written
		// (fast.go), woken runs too; what River fetches is retries, runs
		// parked for longer than a couple of seconds, schedules, and
		// whatever a restart recovers. Its fetch poll (a second by
		// default) is enough for those, and poll-only spares an idle
		// SQLite process the notification table River's SQLite listener
		// reads twenty times a second.
		cfg.PollOnly = true
	}
	client, err := river.NewClient(s.driver, cfg)
	if err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	s.river = client
	return nil
}

// Start begins working runs and messages.
func (s *Store) Start(ctx context.Context, w Work) error {
	if w.Meter == nil {
		w.Meter = switchboard.NopMeter{}
	}
	s.work = w
	// A job still marked running by this replica was cut off when it died
	// (with SQLite this process is the only one, so any running job is).
	// Make it available again now rather than waiting for the stuck-job
	// rescuer.
	var err error
	switch {
	case !s.postgres:
		_, err = s.db.ExecContext(ctx, `UPDATE river_job SET state = 'available' WHERE state = 'running'`)
		if err == nil {
			// And runs cut off on the fast path, which have no job yet.
			err = s.queueUnqueued(ctx)
		}
	case s.clientID != "":
		_, err = s.db.ExecContext(ctx, `UPDATE river_job SET state = 'available'
			WHERE state = 'running' AND attempted_by[array_length(attempted_by, 1)] = $1`, s.clientID)
	}
	if err != nil {
		return fmt.Errorf("recover interrupted jobs: %w", err)
	}
	if s.postgres && s.clientID != "" {
		if err := s.heartbeat(ctx); err != nil {
			return err
		}
	}
	if err := s.river.Start(ctx); err != nil {
		return fmt.Errorf("start job queue: %w", err)
	}
	s.started = true
	s.fast.start(fastPerWorker * s.workers)
	if s.postgres && s.clientID != "" {
		aliveCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
		s.aliveDone = make(chan struct{})
		s.stopAlive = stop
		go func() { defer close(s.aliveDone); s.keepAlive(aliveCtx) }()
	}
	return nil
}

// Stop stops fetching new jobs and waits for the ones in flight to finish or
// for ctx to end, whichever comes first; jobs still running then are
// cancelled. With several replicas, what this one did not finish is handed
// to the others at once.
func (s *Store) Stop(ctx context.Context) error {
	if !s.started {
		return nil
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.fast.stop(ctx) }()
	err := s.river.Stop(ctx)
	wg.Wait()
	if ctx.Err() != nil {
		// Out of drain time: cancel what is left, briefly.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = s.river.StopAndCancel(cctx)
		cancel()
	}
	if s.stopAlive != nil {
		s.stopAlive()
		<-s.aliveDone
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if lerr := s.leave(lctx); lerr != nil {
			s.logger.Warn("hand unfinished jobs to the other replicas", "err", lerr)
		}
		cancel()
	}
	return err
}

// retryAfter is how long after failed attempt attempt a job is tried again:
// 1, 2, 4... seconds, at most a minute.
func retryAfter(attempt int) time.Duration {
	return min(time.Second<<max(attempt-1, 0), time.Minute)
}

type runWorker struct {
	river.WorkerDefaults[RunArgs]
	s *Store
}

// NextRetry retries a run after 1, 2, 4... seconds, at most a minute
// apart, instead of River's default (the attempt to the fourth power in
// seconds: hours by the tenth). A step's own failures are parked and told
// in the channel by the engine until the config's retry_for; what still
// comes here (the run's progress could not be saved) is given up on within
// minutes, and the channel told.
func (w *runWorker) NextRetry(job *river.Job[RunArgs]) time.Time {
	return time.Now().Add(retryAfter(job.Attempt))
}

func (w *runWorker) Work(ctx context.Context, job *river.Job[RunArgs]) error {
	s := w.s
	run, err := s.GetRun(ctx, job.Args.RunID)
	if switchboard.ErrorCode(err) == switchboard.ENOTFOUND {
		return river.JobCancel(err)
	} else if err != nil {
		return err
	}
	// Messages held by this job when its last holder stopped are queued
	// first (fast.go).
	if err := s.adoptHeld(ctx, run.ID); err != nil {
		return err
	}
	if run.State.Finished() {
		return nil
	}
	// The run's messages are posted by this worker as it goes, as on the
	// fast path; the run's own job is River's to settle.
	return s.carry(ctx, run, job.Attempt, job.MaxAttempts, &fastRun{attempt: job.Attempt})
}

// inPlaceWait: a run that has to wait this long or less (an instance
// changing state, a retry soon) waits where it is, its job held, rather
// than parked and fetched again; holdFor bounds how long one attempt holds
// a run that way.
const (
	inPlaceWait = 2 * time.Second
	holdFor     = time.Minute
	// maxSteps bounds the steps one attempt takes, so that a run that
	// never waits cannot hold a worker.
	maxSteps = 50
)

// carry advances run step by step, each step's outcome committed, until it
// finishes, fails, or has to wait longer than inPlaceWait; it returns what
// the run's job returns: nil when finished, a snooze when parked, an error
// to retry. The step's messages are written taken by this process and
// posted at once (fast.go); when the run's own job is one this process took
// itself (the fast path), each commit also settles it.
func (s *Store) carry(ctx context.Context, run *switchboard.Run, attempt, maxAttempts int, f *fastRun) error {
	began := time.Now()
	for step := 1; ; step++ {
		out, err := s.work.Advancer.Advance(ctx, run, s)
		if err != nil {
			if attempt < maxAttempts {
				s.logger.Warn("run will be retried", "run", run.ID, "attempt", attempt, "err", err)
				return err
			}
			// Out of retries: end the run and say so, rather than leave the
			// channel waiting forever.
			text := fmt.Sprintf("I gave up on %s after %d attempts: %s", run.Workflow, attempt, switchboard.ErrorMessage(err))
			run.State, run.Error, run.FinishedAt = switchboard.RunFailed, text, time.Now()
			out = switchboard.Outcome{Messages: []switchboard.Message{messageFor(run, "giveup", text)},
				Audit: []switchboard.AuditEvent{{Kind: switchboard.AuditRun, RunID: run.ID, Actor: run.Request.UserID,
					Channel: run.Request.ChannelID, Subject: run.Workflow, Outcome: string(switchboard.RunFailed), Detail: err.Error()}}}
		}
		park := out.Wait > inPlaceWait || time.Since(began)+out.Wait > holdFor || step == maxSteps
		f.step(park)
		if err := s.commitOutcome(ctx, run, out, f); err != nil {
			return err
		}
		f.post(ctx, s)
		switch {
		case run.State.Finished():
			return nil
		case park:
			return river.JobSnooze(out.Wait)
		}
		select {
		case <-ctx.Done():
			return river.JobSnooze(out.Wait)
		case <-time.After(out.Wait):
		}
	}
}

func messageFor(run *switchboard.Run, key, text string) switchboard.Message {
	return switchboard.Message{RunID: run.ID, Key: key, Source: run.Request.Source, ChannelID: run.Request.ChannelID,
		ResponseURL: run.Request.ResponseURL, Text: text, RequestedAt: run.Request.ReceivedAt}
}

type messageWorker struct {
	river.WorkerDefaults[MessageArgs]
	s *Store
}

// NextRetry retries a failed delivery after 1, 2, 4... seconds, at most a
// minute apart: an answer is worth little late, and River's default (the
// attempt to the fourth power in seconds) would keep a person waiting 16 s
// after the second failure.
func (w *messageWorker) NextRetry(job *river.Job[MessageArgs]) time.Time {
	return time.Now().Add(retryAfter(job.Attempt))
}

// messenger returns the Messenger for messages of source.
func (w *Work) messenger(source string) switchboard.Messenger {
	if m, ok := w.Messengers[source]; ok {
		return m
	}
	return w.Messenger
}

func (w *messageWorker) Work(ctx context.Context, job *river.Job[MessageArgs]) error {
	s := w.s
	var body string
	var sentAt, createdAt, sendingAt int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT body, sent_at, created_at, sending_at FROM sb_messages WHERE run_id = ? AND msg_key = ?`),
		job.Args.RunID, job.Args.Key).Scan(&body, &sentAt, &createdAt, &sendingAt)
	if isNoRows(err) {
		return river.JobCancel(fmt.Errorf("message %s/%s is gone", job.Args.RunID, job.Args.Key))
	} else if err != nil {
		return err
	}
	if sentAt != 0 {
		return nil
	}
	// A run's messages reach the channel in the order it said them: this
	// one waits while an earlier one is still on its way.
	var waiting int
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM sb_messages WHERE run_id = ? AND sent_at = 0 AND created_at < ?`),
		job.Args.RunID, createdAt).Scan(&waiting); err != nil {
		return err
	}
	if waiting > 0 {
		return river.JobSnooze(100 * time.Millisecond)
	}
	var m switchboard.Message
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return river.JobCancel(fmt.Errorf("decode message: %w", err))
	}
	if m.Thread {
		// The thread is the run's first message that got a Ref.
		err := s.db.QueryRowContext(ctx, s.q(`SELECT ts FROM sb_messages WHERE run_id = ? AND ts <> '' ORDER BY sent_at LIMIT 1`), m.RunID).Scan(&m.ThreadRef)
		if err != nil && !isNoRows(err) {
			return err
		}
	}
	earlier, err := s.deliveredVia(ctx, m.RunID)
	if err != nil {
		return err
	}
	// A post begun by an earlier attempt may be in the channel: the
	// messenger looks for it before posting again.
	if sendingAt != 0 {
		m.MaybeSent = time.Unix(0, sendingAt)
	}
	_, err = s.deliver(ctx, m, earlier, sendingAt != 0, job.Attempt, job.MaxAttempts, nil)
	return err
}

// deliver posts m, the run's earlier messages having gone the ways earlier
// lists, and records it; done, when not nil, runs in the transaction that
// records the delivery. intent says the intent to post is already on
// record. It returns what the message's job returns: nil when delivered (or
// given up on, recorded and audited), a snooze, a cancel, or an error to
// retry.
func (s *Store) deliver(ctx context.Context, m switchboard.Message, earlier []string, intent bool, attempt, maxAttempts int, done func(*sql.Tx) error) (switchboard.Delivery, error) {
	messenger := s.work.messenger(m.Source)
	if messenger == nil {
		return switchboard.Delivery{}, s.failed(ctx, m, switchboard.Errorf(switchboard.EINVALID, "no chat platform is configured to deliver messages of %s requests", m.Source))
	}
	// The intent goes on record before the post: if this process dies
	// between Slack taking the post and the mark below (or the post failed
	// in a way that may have landed, such as a timeout), whoever tries again
	// knows it may be in the channel and looks for it first. Only a post
	// actually begun counts: a retry for any other reason (a job taken over
	// before it posted) does not read the channel, where another run's
	// identical text could pass for this one.
	if !intent {
		if err := s.markSending(ctx, m); err != nil {
			return switchboard.Delivery{}, err
		}
	}
	d, err := messenger.Deliver(ctx, m, earlier)
	var se *switchboard.Error
	switch code := switchboard.ErrorCode(err); {
	case err == nil:
		s.work.Meter.MessageSent("sent")
		return d, s.markSent(ctx, m, d.Via, d.Ref, done)
	case code == switchboard.ETHROTTLED || code == switchboard.EINVALID:
		// Refused before anything was posted: a later attempt need not
		// look for this one.
		s.clearSending(ctx, m)
	}
	switch code := switchboard.ErrorCode(err); {
	case code == switchboard.ETHROTTLED:
		s.work.Meter.MessageSent("throttled")
		wait := time.Second
		if errors.As(err, &se) && se.RetryAfter > 0 {
			wait = se.RetryAfter
		}
		return d, river.JobSnooze(wait)
	case code == switchboard.EUNAVAILABLE || code == switchboard.EINTERNAL:
		if attempt < maxAttempts {
			s.work.Meter.MessageSent("retry")
			s.recordError(ctx, m, err)
			return d, err
		}
	}
	return d, s.failed(ctx, m, err)
}

// failed gives up on a message: recorded, audited, counted.
func (s *Store) failed(ctx context.Context, m switchboard.Message, err error) error {
	s.work.Meter.MessageSent("failed")
	s.recordError(ctx, m, err)
	// Given up: marked so that the run's later messages stop waiting for it.
	_, _ = s.db.ExecContext(ctx, s.q(`UPDATE sb_messages SET sent_at = -1, via = 'failed' WHERE run_id = ? AND msg_key = ? AND sent_at = 0`), m.RunID, m.Key)
	aerr := s.Audit(ctx, switchboard.AuditEvent{Kind: switchboard.AuditMessage, RunID: m.RunID, Channel: m.ChannelID,
		Subject: "message " + m.Key, Outcome: "failed", Detail: err.Error()})
	if aerr != nil {
		return aerr
	}
	return river.JobCancel(err)
}

// deliveredVia lists how the run's delivered messages went, in order.
func (s *Store) deliveredVia(ctx context.Context, runID string) ([]string, error) {
	vias, err := column[string](s.db.QueryContext(ctx, s.q(`SELECT via FROM sb_messages WHERE run_id = ? AND sent_at > 0 ORDER BY sent_at`), runID))
	if err != nil {
		return nil, fmt.Errorf("read deliveries of run %s: %w", runID, err)
	}
	return vias, nil
}

func (s *Store) recordError(ctx context.Context, m switchboard.Message, err error) {
	_, _ = s.db.ExecContext(ctx, s.q(`UPDATE sb_messages SET last_error = ? WHERE run_id = ? AND msg_key = ?`), err.Error(), m.RunID, m.Key)
}

// markSent records a delivered message and puts it in the channel's
// transcript, where the console shows it.
//
// A message delivered but not yet marked would be sent again after a crash
// (Slack cannot deduplicate a response_url post), so the mark goes through
// the request path's connection, which is first in line for the SQLite
// writer: the window between "Slack has it" and "we know it" stays as short
// as one small write.
//
// Once the platform has the message, the record is what must happen: a
// failing write (a full disk, a lost connection) is retried here, never the
// post, until it succeeds or the process stops, in which case the next
// attempt finds the intent and looks for the message before posting.
func (s *Store) markSent(ctx context.Context, m switchboard.Message, via, ts string, done func(*sql.Tx) error) error {
	wait := 50 * time.Millisecond
	for {
		err := s.recordSent(ctx, m, via, ts, done)
		if err == nil {
			return nil
		}
		s.logger.Warn("message delivered but not yet recorded; retrying the record", "run", m.RunID, "message", m.Key, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// markSending records that a post of m is about to begin.
func (s *Store) markSending(ctx context.Context, m switchboard.Message) error {
	_, err := s.req.ExecContext(ctx, s.q(`UPDATE sb_messages SET sending_at = ? WHERE run_id = ? AND msg_key = ? AND sent_at = 0`),
		time.Now().UnixNano(), m.RunID, m.Key)
	if err != nil {
		return fmt.Errorf("record the intent to post message %s/%s: %w", m.RunID, m.Key, err)
	}
	return nil
}

// clearSending records that the post of m begun last did not land.
func (s *Store) clearSending(ctx context.Context, m switchboard.Message) {
	_, _ = s.req.ExecContext(ctx, s.q(`UPDATE sb_messages SET sending_at = 0 WHERE run_id = ? AND msg_key = ? AND sent_at = 0`), m.RunID, m.Key)
}

func (s *Store) recordSent(ctx context.Context, m switchboard.Message, via, ts string, done func(*sql.Tx) error) error {
	return s.inTx(context.WithoutCancel(ctx), s.req, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE sb_messages SET sent_at = ?, via = ?, ts = ?, held = 0 WHERE run_id = ? AND msg_key = ? AND sent_at = 0`),
			time.Now().UnixNano(), via, ts, m.RunID, m.Key)
		if err != nil {
			return fmt.Errorf("mark message sent: %w", err)
		}
		if done != nil {
			if err := done(tx); err != nil {
				return err
			}
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		_, err = s.appendTranscript(ctx, tx, switchboard.TranscriptLine{RunID: m.RunID, ChannelID: m.ChannelID, Kind: "answer", Text: m.Text, ApprovalID: m.ApprovalID})
		return err
	})
}

// WakeRun works a run parked on a re-check now, here when a worker is free
// (the fast path), otherwise by making its job available: an approval it
// waits for was just decided. A run that is not parked is left
// alone; either way its next re-check would have found the decision too.
func (s *Store) WakeRun(ctx context.Context, runID string) error {
	query := `SELECT id FROM river_job WHERE kind = 'run' AND state IN ('scheduled', 'available') AND json_extract(args, '$.run_id') = ?`
	if s.postgres {
		query = `SELECT id FROM river_job WHERE kind = 'run' AND state IN ('scheduled', 'available') AND args->>'run_id' = $1`
	}
	ids, err := column[int64](s.req.QueryContext(ctx, query, runID))
	if err != nil {
		return fmt.Errorf("find the job of run %s: %w", runID, err)
	}
	for _, id := range ids {
		if s.takeParked(ctx, id, runID) {
			continue
		}
		if _, err := s.river.JobRetry(ctx, id); err != nil {
			return fmt.Errorf("wake run %s: %w", runID, err)
		}
	}
	return nil
}

// takeParked takes the parked job of run runID for this process and works
// it on the fast path; it reports false when no worker is free or the job
// is no longer parked.
func (s *Store) takeParked(ctx context.Context, job int64, runID string) bool {
	if !s.fast.take() {
		return false
	}
	now := time.Now().UTC()
	var attempt int
	err := s.inTx(ctx, s.req, func(tx *sql.Tx) error {
		if s.postgres {
			return tx.QueryRowContext(ctx, `UPDATE river_job SET state = 'running', attempt = attempt + 1, attempted_at = $1,
				attempted_by = array_append(attempted_by, $2) WHERE id = $3 AND state IN ('scheduled', 'available') RETURNING attempt`,
				now, s.river.ID(), job).Scan(&attempt)
		}
		return tx.QueryRowContext(ctx, `UPDATE river_job SET state = 'running', attempt = attempt + 1, attempted_at = ?,
			attempted_by = jsonb(json_insert(coalesce(json(attempted_by), '[]'), '$[#]', ?)) WHERE id = ? AND state IN ('scheduled', 'available') RETURNING attempt`,
			riverTime(now), s.river.ID(), job).Scan(&attempt)
	})
	if err != nil {
		s.fast.give()
		return false
	}
	go s.workFast(job, attempt, runID, nil)
	return true
}
