package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Step kinds the runner knows.
const (
	StepInstances = "instances" // describe/start/stop/reboot/list instances and report
)

// Locker keeps two runs from mutating the same instance at once. Keys are
// "cloud/instance-id". It returns the id of the run holding a key, or "" when
// the run now holds them all. The store releases a run's locks when it ends.
type Locker interface {
	LockInstances(ctx context.Context, runID string, keys []string) (holder string, err error)
}

// Runner carries runs out. It holds no state of its own between calls:
// everything a run needs to resume is in the run.
type Runner struct {
	Providers map[string]switchboard.Provider
	Locks     Locker
	// Approvals keeps the approvals workflows ask for; nil means workflows
	// cannot ask.
	Approvals ApprovalStore
	NowFunc   func() time.Time
	// PollInterval is how long a run parks between checks of an instance
	// state. Default 2s.
	PollInterval time.Duration
	// StartTimeout and StopTimeout bound the wait for running and stopped.
	// Defaults 5 and 10 minutes.
	StartTimeout, StopTimeout time.Duration
}

func (r *Runner) now() time.Time {
	if r.NowFunc != nil {
		return r.NowFunc()
	}
	return time.Now()
}

func (r *Runner) pollInterval() time.Duration {
	if r.PollInterval > 0 {
		return r.PollInterval
	}
	return 2 * time.Second
}

// Advance runs the run's steps until it finishes or has to wait. It updates
// run in place (cursor, scratch, vars, state, result). An error means a
// transient failure: nothing was decided, and the caller should retry later.
func (r *Runner) Advance(ctx context.Context, run *switchboard.Run, saver switchboard.RunSaver) (switchboard.Outcome, error) {
	var out switchboard.Outcome
	run.State = switchboard.RunRunning
	for !run.State.Finished() {
		// The end of the plan, or of the main steps when nothing failed.
		if run.Cursor >= len(run.Plan) || run.Plan[run.Cursor].Section == sectionOnError && run.Error == "" {
			run.State = switchboard.RunSucceeded
			if run.Error != "" {
				run.State = switchboard.RunFailed
			}
			break
		}
		step := run.Plan[run.Cursor]
		sc := &stepContext{runner: r, run: run, saver: saver, out: &out}
		var err error
		switch _, workflow := stepOutputs[step.Kind]; {
		case step.Kind == StepInstances:
			err = sc.instances(ctx, step.With)
		case workflow:
			err = sc.workflowStep(ctx)
		default:
			err = sc.fail(fmt.Sprintf("Run %s has a step of unknown kind %q; it was stopped there.", run.ID, step.Kind))
		}
		if err != nil {
			return out, err
		}
		if out.Wait > 0 {
			run.State = switchboard.RunWaiting
			return out, nil
		}
	}
	run.FinishedAt = r.now()
	out.Audit = append(out.Audit, switchboard.AuditEvent{Time: r.now(), Kind: switchboard.AuditRun, RunID: run.ID,
		Actor: run.Request.UserID, Channel: run.Request.ChannelID, Subject: run.Workflow, Outcome: string(run.State), Detail: firstNonEmpty(run.Error, run.Result)})
	return out, nil
}

// stepContext is one step of one Advance: helpers to say things, save
// progress and finish.
type stepContext struct {
	runner *Runner
	run    *switchboard.Run
	saver  switchboard.RunSaver
	out    *switchboard.Outcome
}

// say queues a message to the run's channel. name says which of the step's
// messages it is ("answer", "lock.r-…"): with the step it makes the
// message's key, so a retried step cannot post the same message twice and
// different messages of one step never share a key.
func (sc *stepContext) say(name, text string) {
	req := sc.run.Request
	sc.out.Messages = append(sc.out.Messages, switchboard.Message{
		RunID:       sc.run.ID,
		Key:         fmt.Sprintf("step%d.%s", sc.run.Cursor, name),
		Source:      req.Source,
		ChannelID:   req.ChannelID,
		ResponseURL: req.ResponseURL,
		Text:        text,
		RequestedAt: req.ReceivedAt,
	})
}

func (sc *stepContext) audit(kind, subject, outcome, detail string) {
	sc.out.Audit = append(sc.out.Audit, switchboard.AuditEvent{Time: sc.runner.now(), Kind: kind, RunID: sc.run.ID,
		Actor: sc.run.Request.UserID, Channel: sc.run.Request.ChannelID, Subject: subject, Outcome: outcome, Detail: detail})
}

// next finishes the current step and moves to the next one.
func (sc *stepContext) next() {
	sc.run.Cursor++
	sc.run.Scratch = nil
}

// succeed ends the run with a result the channel has been told.
func (sc *stepContext) succeed(result string) {
	sc.run.Result = result
	sc.next()
}

// fail ends the run as failed and tells the channel why.
func (sc *stepContext) fail(text string) error {
	sc.say("answer", text)
	sc.run.Error = text
	sc.run.State = switchboard.RunFailed
	sc.run.Scratch = nil
	return nil
}

func (sc *stepContext) wait(d time.Duration) {
	sc.out.Wait = max(d, time.Millisecond)
}

func (sc *stepContext) loadScratch(v any) error {
	if len(sc.run.Scratch) == 0 {
		return nil
	}
	if err := json.Unmarshal(sc.run.Scratch, v); err != nil {
		return fmt.Errorf("run %s: read step progress: %w", sc.run.ID, err)
	}
	return nil
}

// stage records the step's progress in the run, to be written with the
// outcome of this Advance (its messages and audit lines) in one commit.
func (sc *stepContext) stage(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode step progress: %w", err)
	}
	sc.run.Scratch = b
	return nil
}

// checkpoint writes the step's progress durably before a side effect.
func (sc *stepContext) checkpoint(ctx context.Context, v any) error {
	if err := sc.stage(v); err != nil {
		return err
	}
	if err := sc.saver.SaveRun(ctx, sc.run); err != nil {
		return fmt.Errorf("save run %s: %w", sc.run.ID, err)
	}
	return nil
}

// retryable sorts a cloud error. Throttling returns the wait the cloud asked
// for (or 2s); an outage or an unexpected error is transient; anything the
// cloud refused is final (wait 0, transient false).
func retryable(err error) (wait time.Duration, transient bool) {
	var ce *switchboard.CloudError
	var se *switchboard.Error
	switch {
	case switchboard.ErrorCode(err) == switchboard.ETHROTTLED:
		wait = 2 * time.Second
		if errors.As(err, &ce) && ce.RetryAfter > 0 {
			wait = ce.RetryAfter
		} else if errors.As(err, &se) && se.RetryAfter > 0 {
			wait = se.RetryAfter
		}
		return wait, false
	case switchboard.ErrorCode(err) == switchboard.EUNAVAILABLE, !errors.As(err, &ce) && !errors.As(err, &se):
		return 0, true
	}
	return 0, false
}

// cloudFailure handles a failed cloud call: throttling parks the run, a
// transient failure is returned for the caller to retry, and anything the
// cloud refused is final: the run fails and the channel is told.
func (sc *stepContext) cloudFailure(err error, what string) (final bool, _ error) {
	wait, transient := retryable(err)
	switch {
	case wait > 0:
		sc.wait(wait)
		return false, nil
	case transient:
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return true, sc.fail(fmt.Sprintf("Could not %s: %s", what, switchboard.ErrorMessage(err)))
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

var _ switchboard.Advancer = (*Runner)(nil)
