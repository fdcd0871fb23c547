package switchboard

import (
	"context"
	"encoding/json"
	"time"
)

// RunState is where a run is in its life.
type RunState string

const (
	RunQueued    RunState = "queued"    // written, not picked up yet
	RunRunning   RunState = "running"   // a worker is on it
	RunWaiting   RunState = "waiting"   // parked until a re-check or a decision
	RunSucceeded RunState = "succeeded" // finished as asked
	RunFailed    RunState = "failed"    // finished with an error the channel was told about
)

// Finished reports whether the run will not change any more.
func (s RunState) Finished() bool { return s == RunSucceeded || s == RunFailed }

// Run outcomes say more of how a finished run ended than its state does: a
// command that changed nothing "succeeded" as a run, but was refused or had
// nothing to do, and the console must not show it as a green success.
const (
	OutcomeRefused = "refused"       // nothing was done: not allowed (out of scope, policy, no match)
	OutcomeNoop    = "nothing to do" // nothing was done: the instances were already so, or could not be
)

// StepRecord is how one step of a run's plan went: when it started and
// ended and how, for the console's run detail.
type StepRecord struct {
	Index int    `json:"index"`
	Kind  string `json:"kind"`
	ID    string `json:"id,omitempty"`
	// State is running, waiting, succeeded, skipped (its condition did
	// not hold) or failed.
	State      string    `json:"state"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Step record states.
const (
	StepRunning   = "running"
	StepWaiting   = "waiting"
	StepSucceeded = "succeeded"
	StepSkipped   = "skipped"
	StepFailed    = "failed"
)

// Step is one step of a run's plan. Kind names what the engine does; With
// holds its parameters.
type Step struct {
	Kind string          `json:"kind"`
	With json.RawMessage `json:"with,omitempty"`
	// ID, If and Section come from a workflow's steps: the name later steps
	// use for this one's outputs, the condition that must hold for it to
	// run, and "on_error" for the steps that run only after a failure.
	ID      string `json:"id,omitempty"`
	If      string `json:"if,omitempty"`
	Section string `json:"section,omitempty"`
	// Policy is the workflow's policy, on the steps that change instances.
	Policy []PolicyRule `json:"policy,omitempty"`
}

// Run is one durable piece of work: the request that started it, the plan of
// steps, how far it got, and what each step left for the ones after it.
// Everything needed to resume after a crash is in this value.
type Run struct {
	ID       string   `json:"id"`
	Workflow string   `json:"workflow"` // e.g. "ec2.start"
	Cloud    string   `json:"cloud,omitempty"`
	State    RunState `json:"state"`
	Request  Request  `json:"request"`
	Plan     []Step   `json:"plan"`
	// Cursor is the index of the step to run next.
	Cursor int `json:"cursor"`
	// Scratch is the current step's own progress (e.g. "stop requested"),
	// written before a side effect so a retry does not repeat it.
	Scratch json.RawMessage `json:"scratch,omitempty"`
	// Vars holds outputs of finished steps for the steps after them.
	Vars map[string]json.RawMessage `json:"vars,omitempty"`
	// Locks are the instance keys ("cloud/id") the run holds while it
	// mutates them.
	Locks  []string `json:"locks,omitempty"`
	Result string   `json:"result,omitempty"`
	Error  string   `json:"error,omitempty"`
	// Outcome, on a finished run, is OutcomeRefused or OutcomeNoop when
	// it did nothing; empty when it did what it was asked (or failed).
	Outcome string `json:"outcome,omitempty"`
	// Steps records each step started so far, in the order they ran.
	Steps      []StepRecord `json:"steps,omitempty"`
	CreatedAt  time.Time    `json:"created_at"`
	UpdatedAt  time.Time    `json:"updated_at"`
	FinishedAt time.Time    `json:"finished_at,omitzero"`
}

// Message is something Switchboard says in a channel on behalf of a run. Key
// is unique per run and step, so a retried step never posts twice.
//
// It says who and what, not how a platform shows it: Text is Switchboard's
// own light markup (*bold*, `code`, <URL|label> links, and mentions written
// with Mention), ApprovalID asks for Approve and Deny buttons, and the
// platform's Messenger renders them as it must.
type Message struct {
	RunID       string    `json:"run_id"`
	Key         string    `json:"key"`
	Source      string    `json:"source"` // where the request came from (slack, socket, console, mail...): it picks the Messenger
	ChannelID   string    `json:"channel_id"`
	ResponseURL string    `json:"response_url,omitempty"`
	Text        string    `json:"text"`
	RequestedAt time.Time `json:"requested_at"` // when the request came in: response_url expires 30 min after
	// ApprovalID, when set, makes the message an approval request with
	// Approve and Deny buttons whose value is the id.
	ApprovalID string `json:"approval_id,omitempty"`
	// Replace, with a ResponseURL, replaces the message the URL belongs to
	// (an approval request, once decided) instead of adding one.
	Replace bool `json:"replace,omitempty"`
	// Ephemeral, with a ResponseURL, shows the message only to the person
	// who acted.
	Ephemeral bool `json:"ephemeral,omitempty"`
	// Thread asks for a reply in the thread of the run's first message
	// that the platform gave a Ref; ThreadRef is that Ref, filled in when
	// the message is sent.
	Thread    bool   `json:"thread,omitempty"`
	ThreadRef string `json:"thread_ts,omitempty"`
	// MaybeSent, when set, is when an earlier attempt to post this message
	// began whose outcome is unknown: the process died before it recorded
	// the answer, or the platform never answered. The message may already
	// be in the channel; a Messenger that can look for it there does so
	// before posting again, so that nobody sees it twice.
	MaybeSent time.Time `json:"-"`
}

// MessageRecord is a run's message as the store keeps it: what was said
// and how its delivery went.
type MessageRecord struct {
	Message
	CreatedAt time.Time `json:"created_at"`
	SentAt    time.Time `json:"sent_at,omitzero"`
	Via       string    `json:"via,omitempty"`   // how it went, or "failed"
	Ref       string    `json:"ref,omitempty"`   // the platform's id of the posted message (Slack's ts)
	Error     string    `json:"error,omitempty"` // the last delivery error
}

// Delivery is how a platform delivered a message.
type Delivery struct {
	// Via is the platform's word for the path it took ("response_url",
	// "chat.postMessage"); it is recorded and given back for the run's
	// later messages.
	Via string
	// Ref is the platform's id of the posted message (Slack's ts), under
	// which later messages of the run may reply in a thread; empty when
	// the path gives none.
	Ref string
}

// Messenger delivers messages to one chat platform and owns that platform's
// delivery rules: budgets, pacing, fallbacks, rendering. The store queues
// messages and hands each to the Messenger of its source.
//
// Deliver posts m; earlier lists the Via of the run's messages delivered
// before it, for budgets kept per request. It returns an *Error with
// ETHROTTLED (and RetryAfter) when the message must wait, EUNAVAILABLE when
// a retry may succeed, anything else when it will not.
type Messenger interface {
	Deliver(ctx context.Context, m Message, earlier []string) (Delivery, error)
}

// AuditEvent is one line of the audit log: a request, a decision, an action
// or a message, with who and where.
type AuditEvent struct {
	ID      int64     `json:"id"`
	Time    time.Time `json:"time"`
	RunID   string    `json:"run_id,omitempty"`
	Kind    string    `json:"kind"` // request | decision | action | message | run
	Actor   string    `json:"actor,omitempty"`
	Channel string    `json:"channel,omitempty"`
	Subject string    `json:"subject,omitempty"` // what was asked or acted on
	Outcome string    `json:"outcome,omitempty"` // allowed, refused, ok, failed...
	Detail  string    `json:"detail,omitempty"`
}

// AuditQuery selects audit lines: those at or after Since that match every
// field set (RunID matches a run id or its beginning, as the console shows
// it shortened), newest first, at most Limit of them.
type AuditQuery struct {
	Since   time.Time
	Actor   string
	Kind    string
	Outcome string
	RunID   string
	Limit   int
}

// Audit kinds.
const (
	AuditRequest  = "request"
	AuditDecision = "decision"
	AuditAction   = "action"
	AuditMessage  = "message"
	AuditRun      = "run"
)

// TranscriptLine is a message as the console shows it: an ack or an answer in
// a channel.
type TranscriptLine struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	RunID     string    `json:"run_id,omitempty"`
	ChannelID string    `json:"channel_id"`
	UserID    string    `json:"user_id,omitempty"` // set on ephemeral lines
	Kind      string    `json:"kind"`              // command | ack | answer
	Text      string    `json:"text"`
	// ApprovalID is set on an approval request: the console shows its
	// buttons.
	ApprovalID string `json:"approval_id,omitempty"`
}

// RunSaver persists a run's progress. A step calls it before every cloud
// mutation so that a retried step knows the mutation may already be done.
type RunSaver interface {
	SaveRun(ctx context.Context, run *Run) error
}

// Outcome is what advancing a run produced: messages to post and audit lines
// to write, in the same transaction as the run itself, and how long to park
// the run when it has to wait.
type Outcome struct {
	Messages []Message
	Audit    []AuditEvent
	// Wait > 0 parks an unfinished run; it is advanced again after Wait.
	Wait time.Duration
}

// Advancer carries a run forward until it finishes or has to wait. An error
// is a transient failure: nothing was decided, and the caller retries later.
type Advancer interface {
	Advance(ctx context.Context, run *Run, saver RunSaver) (Outcome, error)
}
