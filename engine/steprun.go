package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchboardhq/switchboard"
)

// stepRun is one step of one Advance: it implements switchboard.StepRun,
// the room every step type runs in.
type stepRun struct {
	runner *Runner
	run    *switchboard.Run
	saver  switchboard.RunSaver
	out    *switchboard.Outcome
	// params are the step's parameters with templates rendered.
	params json.RawMessage
	key    *planKey
	// skipped is set when the step's condition did not hold.
	skipped bool
	// cloud is the cloud the step last asked for, named in what the
	// channel is told when it does not answer.
	cloud string
}

var _ switchboard.StepRun = (*stepRun)(nil)

func (sr *stepRun) Run() *switchboard.Run       { return sr.run }
func (sr *stepRun) Step() switchboard.Step      { return sr.run.Plan[sr.run.Cursor] }
func (sr *stepRun) Now() time.Time              { return sr.runner.now() }
func (sr *stepRun) PollInterval() time.Duration { return sr.runner.pollInterval() }
func (sr *stepRun) ApprovalsAvailable() bool    { return sr.runner.Approvals != nil }
func (sr *stepRun) HTTPClient() *http.Client    { return sr.runner.HTTPClient }

// redact hides every configured secret in text that the run keeps or says.
func (sr *stepRun) redact(text string) string { return sr.runner.Secrets.Redact(text) }

func (sr *stepRun) Params(v any) bool {
	if len(sr.params) == 0 {
		return true
	}
	if err := json.Unmarshal(sr.params, v); err != nil {
		_ = sr.Fail(fmt.Sprintf("Step %d (%s): %v", sr.run.Cursor+1, sr.Step().Kind, err), false)
		return false
	}
	return true
}

func (sr *stepRun) Cloud(name string) (switchboard.Provider, string, bool) {
	if name == "" {
		name = sr.run.Cloud
	}
	p, ok := sr.runner.Providers[name]
	sr.cloud = name
	return p, name, ok
}

func (sr *stepRun) Say(name, text string) *switchboard.Message {
	req := sr.run.Request
	sr.out.Messages = append(sr.out.Messages, switchboard.Message{
		RunID:       sr.run.ID,
		Key:         fmt.Sprintf("step%d.%s", sr.run.Cursor, name),
		Source:      req.Source,
		ChannelID:   req.ChannelID,
		ResponseURL: req.ResponseURL,
		Text:        sr.redact(text),
		RequestedAt: req.ReceivedAt,
	})
	return &sr.out.Messages[len(sr.out.Messages)-1]
}

func (sr *stepRun) Audit(kind, subject, outcome, detail string) {
	sr.out.Audit = append(sr.out.Audit, switchboard.AuditEvent{Time: sr.runner.now(), Kind: kind, RunID: sr.run.ID,
		Actor: sr.run.Request.UserID, Channel: sr.run.Request.ChannelID, Subject: sr.redact(subject), Outcome: outcome, Detail: sr.redact(detail)})
}

func (sr *stepRun) Progress(v any) error {
	if len(sr.run.Scratch) == 0 {
		return nil
	}
	if err := json.Unmarshal(sr.run.Scratch, v); err != nil {
		return fmt.Errorf("run %s: read step progress: %w", sr.run.ID, err)
	}
	return nil
}

func (sr *stepRun) Stage(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode step progress: %w", err)
	}
	sr.run.Scratch = b
	return nil
}

func (sr *stepRun) Checkpoint(ctx context.Context, v any) error {
	if err := sr.Stage(v); err != nil {
		return err
	}
	if err := sr.saver.SaveRun(ctx, sr.run); err != nil {
		return saveError{fmt.Errorf("save run %s: %w", sr.run.ID, err)}
	}
	return nil
}

func (sr *stepRun) Wait(d time.Duration) { sr.out.Wait = max(d, time.Millisecond) }

// next finishes the current step and moves to the next one.
func (sr *stepRun) next() {
	sr.run.Cursor++
	sr.run.Scratch = nil
}

func (sr *stepRun) Done(outputs map[string]any) error {
	sr.setOutputs(sr.Step().ID, outputs)
	sr.next()
	return nil
}

func (sr *stepRun) setOutputs(id string, outputs map[string]any) {
	if id == "" {
		return
	}
	if outputs == nil {
		outputs = map[string]any{}
	}
	b, _ := json.Marshal(outputs)
	if !sr.runner.Secrets.Empty() {
		b = redactJSON(b, sr.runner.Secrets)
	}
	if sr.run.Vars == nil {
		sr.run.Vars = map[string]json.RawMessage{}
	}
	sr.run.Vars[id] = b
}

func (sr *stepRun) Succeed(result string) error {
	sr.run.Result = sr.redact(result)
	sr.next()
	return nil
}

func (sr *stepRun) Abort(text string) error {
	text = sr.redact(text)
	sr.Say("answer", text)
	sr.run.Error = text
	sr.run.State = switchboard.RunFailed
	sr.run.Scratch = nil
	return nil
}

func (sr *stepRun) Fail(msg string, quiet bool) error {
	msg = sr.redact(msg)
	sr.Audit(switchboard.AuditAction, fmt.Sprintf("step %d %s", sr.run.Cursor+1, sr.Step().Kind), "failed", msg)
	if sr.Step().Section != sectionOnError {
		for i, s := range sr.run.Plan {
			if s.Section == sectionOnError {
				if quiet {
					break
				}
				sr.run.Error = msg
				sr.run.Cursor = i
				sr.run.Scratch = nil
				return nil
			}
		}
	}
	if quiet {
		sr.run.Error, sr.run.State, sr.run.Scratch = msg, switchboard.RunFailed, nil
		return nil
	}
	return sr.Abort(msg)
}

func (sr *stepRun) CloudError(err error, what string) error {
	wait, transient := switchboard.Retryable(err)
	switch {
	case wait > 0:
		sr.Wait(wait)
		return nil
	case transient:
		return fmt.Errorf("%s: %w", what, err)
	}
	return sr.Fail(fmt.Sprintf("Could not %s: %s", what, switchboard.ErrorMessage(err)), false)
}

func (sr *stepRun) Lock(ctx context.Context, keys []string) (string, error) {
	return sr.runner.Locks.LockInstances(ctx, sr.run.ID, keys)
}

func (sr *stepRun) Policy(rules []switchboard.PolicyRule, in switchboard.PolicyInput) (*switchboard.PolicyRule, error) {
	return policyFor(rules, in)
}

// OpenApproval records an approval request, posts it with its buttons and
// parks the run.
func (sr *stepRun) OpenApproval(ctx context.Context, id, text string, rule switchboard.ApprovalRule) error {
	timeout := rule.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	if rule.OnTimeout == "" {
		rule.OnTimeout = "deny"
	}
	text = sr.redact(text)
	now := sr.runner.now()
	ap := switchboard.Approval{ID: id, RunID: sr.run.ID, Step: sr.run.Cursor, Channel: sr.run.Request.ChannelID, Text: text,
		Approvers: rule.Approvers, Quorum: max(rule.Quorum, 1), AllowRequester: rule.AllowRequester, Requester: sr.run.Request.UserID,
		Deadline: now.Add(timeout), OnTimeout: rule.OnTimeout, State: switchboard.ApprovalPending, CreatedAt: now}
	if err := sr.runner.Approvals.OpenApproval(ctx, ap); err != nil {
		return fmt.Errorf("open approval: %w", err)
	}
	sr.Say("approval."+id, text).ApprovalID = id
	sr.Wait(sr.runner.pollInterval())
	return nil
}

// AwaitApproval checks an approval: while it is pending it parks the run
// and returns a nil approval; once decided (or timed out, which it records
// and tells the channel) it returns the approval and whether it counts as
// approved.
func (sr *stepRun) AwaitApproval(ctx context.Context, id string) (*switchboard.Approval, bool, error) {
	store := sr.runner.Approvals
	ap, err := store.GetApproval(ctx, id)
	if err != nil {
		return nil, false, fmt.Errorf("read approval %s: %w", id, err)
	}
	now := sr.runner.now()
	if ap.State == switchboard.ApprovalPending && !now.Before(ap.Deadline) {
		ap, err = store.UpdateApproval(ctx, id, func(a *switchboard.Approval) error {
			if a.State == switchboard.ApprovalPending {
				a.State, a.DecidedAt = switchboard.ApprovalTimedOut, now
			}
			return nil
		})
		if err != nil {
			return nil, false, fmt.Errorf("time out approval %s: %w", id, err)
		}
		if sr.runner.ApprovalTimedOut != nil && ap.State == switchboard.ApprovalTimedOut {
			sr.runner.ApprovalTimedOut(ctx, ap)
		}
	}
	if ap.State == switchboard.ApprovalPending {
		sr.Wait(min(sr.runner.pollInterval(), max(ap.Deadline.Sub(now), time.Millisecond)))
		return nil, false, nil
	}
	approved := ap.State == switchboard.ApprovalApproved || ap.State == switchboard.ApprovalTimedOut && ap.OnTimeout == "approve"
	if ap.State == switchboard.ApprovalTimedOut {
		sr.Say("approval."+id+".timeout", "Nobody answered \""+clip(ap.Text, 80)+"\" in time; it counts as "+
			map[bool]string{true: "approved", false: "denied"}[approved]+".")
	}
	return ap, approved, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (sr *stepRun) Recall(ctx context.Context, cloud, id string) (switchboard.Instance, bool, error) {
	if sr.runner.Inventory == nil {
		return switchboard.Instance{}, false, nil
	}
	if cloud == "" {
		cloud = sr.run.Cloud
	}
	return sr.runner.Inventory.Recall(ctx, cloud, id)
}

func (sr *stepRun) Settle(ctx context.Context, cloud, id string) error {
	if sr.runner.Inventory == nil {
		return nil
	}
	if cloud == "" {
		cloud = sr.run.Cloud
	}
	return sr.runner.Inventory.Settle(ctx, cloud, id)
}

func (sr *stepRun) Unsettled(ctx context.Context, cloud string) ([]switchboard.Instance, error) {
	if sr.runner.Inventory == nil {
		return nil, nil
	}
	if cloud == "" {
		cloud = sr.run.Cloud
	}
	return sr.runner.Inventory.Unsettled(ctx, cloud)
}

func (sr *stepRun) Remember(cloud string, insts []switchboard.Instance) {
	if sr.runner.Inventory == nil {
		return
	}
	if cloud == "" {
		cloud = sr.run.Cloud
	}
	sr.runner.Inventory.Remember(cloud, insts)
}

func (sr *stepRun) Holdings(ctx context.Context) ([]switchboard.Holding, error) {
	var all []switchboard.Holding
	var errs []error
	for _, kind := range sr.runner.Steps.StepKinds() {
		t, _ := sr.runner.Steps.Step(kind)
		if t.Holdings == nil {
			continue
		}
		hs, err := t.Holdings(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all = append(all, hs...)
	}
	return all, errors.Join(errs...)
}

func (sr *stepRun) Emit(ctx context.Context, ev switchboard.Event) ([]string, error) {
	if sr.runner.Events == nil {
		return nil, switchboard.Errorf(switchboard.EINVALID, "Steps cannot start workflows here.")
	}
	return sr.runner.Events.HandleEvent(ctx, ev)
}

// saveError is a checkpoint that could not be written: the job queue
// retries the run, rather than the engine telling the channel about its
// own database.
type saveError struct{ error }

func (e saveError) Unwrap() error { return e.error }

// redactJSON hides secrets in the strings of a JSON document, keeping it
// JSON: a step's outputs may echo a secret (a peer that repeats a header).
func redactJSON(b []byte, secrets *switchboard.Secrets) []byte {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return b
	}
	out, err := json.Marshal(redactValue(v, secrets))
	if err != nil {
		return b
	}
	return out
}

func redactValue(v any, secrets *switchboard.Secrets) any {
	switch v := v.(type) {
	case string:
		return secrets.Redact(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[secrets.Redact(k)] = redactValue(e, secrets)
		}
		return out
	case []any:
		for i, e := range v {
			v[i] = redactValue(e, secrets)
		}
		return v
	}
	return v
}
