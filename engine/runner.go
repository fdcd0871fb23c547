package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"

	"github.com/switchboardhq/switchboard"
)

// StepInstances is the kind of the step that carries out a built-in instance
// command (/ec2 start tools); its parameters are a
// switchboard.InstanceCommand. The step type itself is registered like any
// other (steps.Instances).
const StepInstances = "instances"

// Locker keeps two runs from mutating the same instance at once. Keys are
// "cloud/instance-id". It returns the id of the run holding a key, or "" when
// the run now holds them all. The store releases a run's locks when it ends.
type Locker interface {
	LockInstances(ctx context.Context, runID string, keys []string) (holder string, err error)
}

// Runner carries runs out. It holds no state of a run between calls:
// everything a run needs to resume is in the run. It keeps only what it
// compiled, so that each workflow's expressions are compiled once.
type Runner struct {
	// Steps are the step types runs may use.
	Steps     *switchboard.Registry
	Providers map[string]switchboard.Provider
	Locks     Locker
	// Approvals keeps the approvals workflows ask for; nil means workflows
	// cannot ask.
	Approvals ApprovalStore
	// Inventory remembers instances after the cloud forgets them; nil
	// means nothing is remembered.
	Inventory switchboard.Inventory
	// ApprovalTimedOut, when set, is told of an approval nobody answered
	// in time once it is recorded so, like Approvals.Decided: the chat
	// platform updates the request it posted.
	ApprovalTimedOut func(ctx context.Context, ap *switchboard.Approval)
	// Events starts the workflows a step emits events for (a sweep); nil
	// means steps cannot.
	Events  switchboard.EventHandler
	NowFunc func() time.Time
	// PollInterval is how long a run parks between checks of an instance
	// state. Default 2s.
	PollInterval time.Duration
	// RetryFor is how long a step that keeps failing for a transient
	// reason (a cloud or a system not answering) is retried before it
	// fails, for workflow steps and the built-in commands alike. Default
	// 30 minutes.
	RetryFor time.Duration
	// Secrets resolves the ${...} references plans keep in place of secret
	// values, when a step runs, and redacts every secret value from what
	// steps say, audit and leave as outputs. nil holds none.
	Secrets *switchboard.Secrets
	// HTTPClient is the client of steps that call URLs a workflow names
	// (http): it goes only where the config allows. nil means such steps
	// can call nothing.
	HTTPClient *http.Client
	// Commands are the instance commands: a workflow step's instance:
	// takes their aliases (tools) and tag selectors (role=web) on its
	// cloud, as /ec2 does, besides instance ids. InstanceIDFunc says
	// what is an id on a cloud (default: i- and 8 or more letters or
	// digits).
	Commands       []switchboard.CommandSpec
	InstanceIDFunc func(cloud, s string) bool
	// CloudTitles names each configured cloud (by its name in the config)
	// as a sentence does: prod → "AWS". A cloud missing here is "the
	// cloud NAME".
	CloudTitles map[string]string

	compiled sync.Map // plan digest → *compiledPlan
	entries  atomic.Int64
}

// maxCompiledPlans bounds the compiled-plan cache.
const maxCompiledPlans = 1000

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

// compiledPlan is a plan's steps, each compiled on first use.
type compiledPlan struct {
	mu    sync.Mutex
	steps []*compiledStep
	errs  []error
}

// Prepare compiles the steps of workflows ahead of their runs, so that the
// first run does not pay for it. Problems are CheckWorkflow's to report.
func (r *Runner) Prepare(workflows []switchboard.WorkflowSpec) {
	for _, wf := range workflows {
		plan := Plan(wf)
		var key planKey
		for i := range plan {
			_, _ = r.compile(plan, i, &key)
		}
	}
}

// planKey is the digest of a plan, computed once per Advance at most.
type planKey struct {
	sum [sha256.Size]byte
	set bool
}

// compile returns step i of plan compiled, from the cache when a plan with
// the same steps was compiled before. key caches the plan's digest across
// the steps of one Advance.
func (r *Runner) compile(plan []switchboard.Step, i int, key *planKey) (*compiledStep, error) {
	if literal(plan[i]) {
		return &compiledStep{}, nil
	}
	if !key.set {
		// A Raw step's parameters are data (what a user typed), never
		// compiled: they are left out of the key, so that plans differing
		// only there (every /deploy QUERY) share one entry.
		shape := make([]switchboard.Step, len(plan))
		for i, st := range plan {
			if t, ok := r.Steps.Step(st.Kind); ok && t.Raw {
				st.With = nil
			}
			shape[i] = st
		}
		b, err := json.Marshal(shape)
		if err != nil {
			return nil, err
		}
		key.sum, key.set = sha256.Sum256(b), true
	}
	if r.entries.Load() > maxCompiledPlans {
		// Plans come from the config, so this many means configs changed
		// many times over a long life: start afresh rather than grow.
		r.compiled.Clear()
		r.entries.Store(0)
	}
	v, loaded := r.compiled.LoadOrStore(key.sum, &compiledPlan{steps: make([]*compiledStep, len(plan)), errs: make([]error, len(plan))})
	if !loaded {
		r.entries.Add(1)
	}
	cp := v.(*compiledPlan)
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.steps[i] == nil && cp.errs[i] == nil {
		cp.steps[i], cp.errs[i] = compileStep(r.Steps, plan, i)
	}
	return cp.steps[i], cp.errs[i]
}

// Advance runs the run's steps until it finishes or has to wait. It updates
// run in place (cursor, scratch, vars, state, result). An error means a
// transient failure: nothing was decided, and the caller should retry later.
func (r *Runner) Advance(ctx context.Context, run *switchboard.Run, saver switchboard.RunSaver) (switchboard.Outcome, error) {
	var out switchboard.Outcome
	var key planKey
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
		sr := &stepRun{runner: r, run: run, saver: saver, out: &out, key: &key}
		rec := r.stepStarted(run)
		failed := run.Error
		if err := sr.runStep(ctx); err != nil {
			var save saveError
			if ctx.Err() != nil || errors.As(err, &save) || !sr.retryHere() {
				return out, r.redactError(err)
			}
			if err := sr.retryLater(err); err != nil {
				return out, r.redactError(err)
			}
		} else {
			sr.retried()
		}
		r.stepEnded(run, rec, sr.skipped, run.Error != failed || run.State == switchboard.RunFailed, out.Wait > 0)
		if out.Wait > 0 {
			run.State = switchboard.RunWaiting
			return out, nil
		}
	}
	if run.State == switchboard.RunSucceeded && run.Result == "" && len(out.Messages) > 0 {
		// A workflow's result is the last thing it said ("tools was
		// restarted."), so a finished run never shows an empty one.
		run.Result = out.Messages[len(out.Messages)-1].Text
	}
	run.FinishedAt = r.now()
	out.Audit = append(out.Audit, switchboard.AuditEvent{Time: r.now(), Kind: switchboard.AuditRun, RunID: run.ID,
		Actor: run.Request.UserID, Channel: run.Request.ChannelID, Subject: run.Workflow, Outcome: string(run.State), Detail: firstNonEmpty(run.Error, run.Result)})
	return out, nil
}

// runStep runs the step at the cursor: it checks the step's condition the
// first time, renders its parameters and calls its type's RunFunc.
func (sr *stepRun) runStep(ctx context.Context) error {
	run := sr.run
	step := run.Plan[run.Cursor]
	t, ok := sr.runner.Steps.Step(step.Kind)
	if !ok {
		return sr.Abort(fmt.Sprintf("Run %s has a step of unknown kind %q; it was stopped there.", run.ID, step.Kind))
	}
	sr.params = step.With
	if t.Raw {
		return t.RunFunc(ctx, sr)
	}
	cs, err := sr.runner.compile(run.Plan, run.Cursor, sr.key)
	if err != nil {
		return sr.Fail(fmt.Sprintf("Step %d (%s) cannot run: %v", run.Cursor+1, step.Kind, err), false)
	}
	var env any
	if cs.env != nil {
		if env, err = cs.envValue(run); err != nil {
			return sr.Fail(err.Error(), false)
		}
		// The condition is checked once, before the step starts: a step
		// that parked mid-way goes on.
		if cs.condition != nil && len(run.Scratch) == 0 {
			ok, err := expr.Run(cs.condition, env)
			if err != nil {
				return sr.Fail(fmt.Sprintf("Step %d (%s): if: %v", run.Cursor+1, step.Kind, err), false)
			}
			if ok != true {
				sr.skipped = true
				sr.setOutputs(step.ID, nil)
				sr.next()
				return nil
			}
		}
	}
	// Secret references are resolved in the text the configuration wrote,
	// never in what an expression yields (which may be what a user typed),
	// and not in set, whose values become outputs kept in the run.
	resolve := !t.Free && bytes.Contains(step.With, []byte("${"))
	if len(cs.templates) > 0 || resolve {
		var raw any
		if err := json.Unmarshal(step.With, &raw); err != nil {
			return sr.Fail(fmt.Sprintf("Step %d (%s): %v", run.Cursor+1, step.Kind, err), false)
		}
		literal := func(s string) (string, error) { return s, nil }
		if resolve {
			literal = sr.runner.Secrets.Resolve
		}
		rendered, err := renderStrings(raw, func(s string) (string, error) {
			if t := cs.templates[s]; t != nil {
				return t.render(env, literal)
			}
			return literal(s)
		})
		if err != nil {
			var e *switchboard.Error
			if errors.As(err, &e) {
				return sr.Fail(fmt.Sprintf("Step %d (%s): %s", run.Cursor+1, step.Kind, e.Message), false)
			}
			return sr.Fail(fmt.Sprintf("Step %d (%s): %v", run.Cursor+1, step.Kind, err), false)
		}
		sr.params, _ = json.Marshal(rendered)
	}
	if slices.Contains(t.Targets, "instance") {
		params, perr := sr.runner.resolveInstance(run, sr.params, slices.Contains(t.Targets, "tags"))
		if perr != nil {
			return sr.Fail(fmt.Sprintf("Step %d (%s): %s", run.Cursor+1, step.Kind, perr.Message), false)
		}
		sr.params = params
	}
	return t.RunFunc(ctx, sr)
}

// stepStarted records the step at the cursor as running, unless it is the
// one that parked last time, and returns its record's index.
func (r *Runner) stepStarted(run *switchboard.Run) int {
	if n := len(run.Steps); n > 0 {
		last := &run.Steps[n-1]
		if last.Index == run.Cursor && last.FinishedAt.IsZero() {
			last.State = switchboard.StepRunning
			return n - 1
		}
	}
	step := run.Plan[run.Cursor]
	run.Steps = append(run.Steps, switchboard.StepRecord{Index: run.Cursor, Kind: step.Kind, ID: step.ID, State: switchboard.StepRunning, StartedAt: r.now()})
	return len(run.Steps) - 1
}

// stepEnded records how the step went: parked, skipped, failed, or done
// when the cursor moved on.
func (r *Runner) stepEnded(run *switchboard.Run, i int, skipped, failed, waiting bool) {
	rec := &run.Steps[i]
	switch {
	case waiting && !failed:
		rec.State = switchboard.StepWaiting
		return
	case failed:
		rec.State = switchboard.StepFailed
	case skipped:
		rec.State = switchboard.StepSkipped
	case run.Cursor == rec.Index:
		return // not finished: it goes on at the next Advance
	default:
		rec.State = switchboard.StepSucceeded
	}
	rec.FinishedAt = r.now()
}

// redactError hides configured secrets in the text of an error Advance
// returns (the job queue stores it, the store audits it), keeping the
// error itself for errors.As.
func (r *Runner) redactError(err error) error {
	if r.Secrets.Empty() {
		return err
	}
	if text := r.Secrets.Redact(err.Error()); text != err.Error() {
		return redactedError{err, text}
	}
	return err
}

type redactedError struct {
	error
	text string
}

func (e redactedError) Error() string { return e.text }
func (e redactedError) Unwrap() error { return e.error }

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

var _ switchboard.Advancer = (*Runner)(nil)

// retryState is kept in the run (as the hidden var _retry) while a step
// keeps failing for a transient reason.
type retryState struct {
	Step     int       `json:"step"`
	Since    time.Time `json:"since"`
	Attempts int       `json:"attempts"`
}

const retryVar = "_retry"

// retryHere reports whether the engine retries the step itself: a step's
// transient failure (a workflow step's or a built-in command's alike) is
// told in the channel and retried until a deadline. Only what cannot be
// parked (the run could not be saved) is left to the job queue.
func (sr *stepRun) retryHere() bool {
	_, ok := sr.runner.Steps.Step(sr.Step().Kind)
	return ok
}

// retryLater parks the run after a transient failure of its step, backing
// off from 2 seconds to a minute, and says once in the channel what failed
// and until when it will be tried; at the deadline the step fails. It
// returns an error only when the run cannot be parked.
//
// A workflow step is named ("Step 2 (describe) failed: ..."); a built-in
// command's step speaks of the cloud ("AWS is not answering; I'll keep
// trying until 14:05 UTC.").
func (sr *stepRun) retryLater(cause error) error {
	run := sr.run
	var st retryState
	if raw, ok := run.Vars[retryVar]; ok {
		_ = json.Unmarshal(raw, &st)
	}
	now := sr.runner.now()
	if st.Step != run.Cursor || st.Since.IsZero() {
		st = retryState{Step: run.Cursor, Since: now}
	}
	limit := sr.runner.RetryFor
	if limit <= 0 {
		limit = 30 * time.Minute
	}
	deadline := st.Since.Add(limit)
	step := sr.Step()
	what := fmt.Sprintf("Step %d (%s)", run.Cursor+1, step.Kind)
	t, _ := sr.runner.Steps.Step(step.Kind)
	silent := sr.silentCloud(cause)
	if !now.Before(deadline) {
		delete(run.Vars, retryVar)
		text := fmt.Sprintf("%s kept failing for %s: %s", what, limit, switchboard.ErrorMessage(cause))
		switch {
		case t.Internal && silent != "":
			text = fmt.Sprintf("%s did not answer for %s, so I gave up: %s", upperFirst(silent), spell(limit), switchboard.ErrorMessage(cause))
		case t.Internal:
			text = fmt.Sprintf("This kept failing for %s, so I gave up: %s", spell(limit), switchboard.ErrorMessage(cause))
		}
		sr.Audit(switchboard.AuditAction, fmt.Sprintf("step %d %s", run.Cursor+1, step.Kind), "gave up", cause.Error())
		return sr.Fail(text, false)
	}
	st.Attempts++
	if st.Attempts == 1 {
		// The whole error goes to the audit log (the channel gets the
		// sentence), so "the error is in its log" holds for an internal one.
		sr.Audit(switchboard.AuditAction, fmt.Sprintf("step %d %s", run.Cursor+1, step.Kind), "retrying", cause.Error())
		until := deadline.UTC().Format("15:04 UTC")
		text := fmt.Sprintf("%s failed: %s I'll keep trying until %s.", what, sentence(switchboard.ErrorMessage(cause)), until)
		switch {
		case t.Internal && silent != "":
			text = fmt.Sprintf("%s is not answering; I'll keep trying until %s.", upperFirst(silent), until)
		case t.Internal:
			text = fmt.Sprintf("%s I'll keep trying until %s.", sentence(switchboard.ErrorMessage(cause)), until)
		}
		// Keyed by when the failures began: a step that got through and
		// later fails again says so again.
		sr.Say(fmt.Sprintf("retry.%d", st.Since.UnixNano()), text)
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if run.Vars == nil {
		run.Vars = map[string]json.RawMessage{}
	}
	run.Vars[retryVar] = b
	sr.Wait(min(2*time.Second<<min(st.Attempts-1, 5), time.Minute, deadline.Sub(now)))
	return nil
}

// retried forgets the retries of a step that got through: the deadline
// of its next failure counts from then.
func (sr *stepRun) retried() {
	delete(sr.run.Vars, retryVar)
}

// silentCloud names the cloud that did not answer, as a sentence calls it
// ("AWS"), when err is a cloud not answering, or returns "".
func (sr *stepRun) silentCloud(err error) string {
	var ce *switchboard.CloudError
	if sr.cloud == "" || switchboard.ErrorCode(err) != switchboard.EUNAVAILABLE || !errors.As(err, &ce) {
		return ""
	}
	if title := sr.runner.CloudTitles[sr.cloud]; title != "" {
		return title
	}
	return "the cloud " + sr.cloud
}

// upperFirst capitalizes the first letter of s, for a name that starts a
// sentence.
func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// spell says a duration as people do: "5 minutes", "1 hour", "90 seconds".
func spell(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	case d%time.Second == 0:
		return unit(int64(d/time.Second), "second")
	}
	return d.String()
}

// sentence ends s with a full stop unless it ends a sentence already.
func sentence(s string) string {
	if s == "" || strings.HasSuffix(s, ".") || strings.HasSuffix(s, "!") || strings.HasSuffix(s, "?") {
		return s
	}
	return s + "."
}
