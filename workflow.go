package switchboard

import (
	"encoding/json"
	"strings"
	"time"
)

// WorkflowSpec is a workflow as configured: what starts it, where it talks,
// and its steps. A run of a workflow carries a copy of its steps, so editing
// the config never changes a run under way.
type WorkflowSpec struct {
	Name    string      `json:"name"`
	Trigger TriggerSpec `json:"trigger"`
	// Description and Usage say, in users' words, what its command does
	// and what it takes ("Restart an instance once ops approves",
	// "instance"); Slack shows them beside the command.
	Description string `json:"description,omitempty"`
	Usage       string `json:"usage,omitempty"`
	// Cloud is the cloud instance steps act on unless a step names another.
	Cloud string `json:"cloud,omitempty"`
	// Channel is where the run talks when its trigger is not a command
	// (a mail, an event, a schedule); a command's run talks where it was
	// typed.
	Channel string `json:"channel,omitempty"`
	// Access says who may start it by command.
	Access Access `json:"access,omitzero"`
	// Policy applies to its start, stop, reboot and terminate steps as a
	// command's policy applies to its actions.
	Policy  []PolicyRule `json:"policy,omitempty"`
	Steps   []StepSpec   `json:"steps"`
	OnError []StepSpec   `json:"on_error,omitempty"`
	Line    int          `json:"line,omitempty"`
}

// TriggerSpec says what starts a workflow. Exactly one field is set.
type TriggerSpec struct {
	// Command is a slash command ("/maint"); the words after it are the
	// run's event.args.
	Command  string           `json:"command,omitempty"`
	Schedule *ScheduleTrigger `json:"schedule,omitempty"`
	Mail     *MailTrigger     `json:"mail,omitempty"`
	Event    *EventTrigger    `json:"event,omitempty"`
	// Webhook is the name in POST /hooks/NAME.
	Webhook string `json:"webhook,omitempty"`
}

// ScheduleTrigger starts a workflow on a cron schedule.
type ScheduleTrigger struct {
	Cron     string `json:"cron"`               // five fields, robfig/cron syntax
	Timezone string `json:"timezone,omitempty"` // IANA name; default UTC
	// Missed says what to do about ticks missed while Switchboard was down:
	// "skip" (default) or "run_once".
	Missed string `json:"missed,omitempty"`
	// Lead fires each tick this long before the time Cron says (a
	// teardown that warns first still ends at its time).
	Lead time.Duration `json:"lead,omitempty"`
}

// MailTrigger starts a workflow for each new mail in a mailbox that matches.
type MailTrigger struct {
	Mailbox string `json:"mailbox"`           // a configured mailbox
	Subject string `json:"subject,omitempty"` // regexp; empty matches any
	From    string `json:"from,omitempty"`    // regexp; empty matches any
}

// EventTrigger starts a workflow for cloud events that match: EventBridge
// events from an SQS queue or POST /events/aws.
type EventTrigger struct {
	Source     string   `json:"source,omitempty"`      // aws.ec2, aws.health
	DetailType []string `json:"detail_type,omitempty"` // "EC2 Instance State-change Notification"
	// State narrows EC2 state-change events to these states (terminated).
	State []string `json:"state,omitempty"`
	// Queue names the SQS queue to read; empty means only POST /events/aws.
	Queue string `json:"queue,omitempty"`
}

// StepSpec is one step of a workflow.
type StepSpec struct {
	// ID names the step so later steps can use its outputs:
	// steps.ID.OUTPUT.
	ID   string `json:"id,omitempty"`
	Kind string `json:"kind"` // notify, approval, extract, set, describe, start, stop, reboot, terminate, run, wait, associate, http, fail
	// If is an expression; the step is skipped when it is false.
	If string `json:"if,omitempty"`
	// With holds the step's parameters as configured; strings may hold
	// {{ expressions }}.
	With json.RawMessage `json:"with,omitempty"`
	Line int             `json:"line,omitempty"`
}

// Approval is a question a run asks people before it goes on: who may
// answer, how many must agree, and until when.
type Approval struct {
	ID             string     `json:"id"`
	RunID          string     `json:"run_id"`
	Step           int        `json:"step"`
	Channel        string     `json:"channel"`
	Text           string     `json:"text"`
	Approvers      []string   `json:"approvers"` // user ids
	Quorum         int        `json:"quorum"`
	AllowRequester bool       `json:"allow_requester,omitempty"`
	Requester      string     `json:"requester,omitempty"`
	Deadline       time.Time  `json:"deadline"`
	OnTimeout      string     `json:"on_timeout"` // deny | approve
	State          string     `json:"state"`      // pending | approved | denied | timed out
	Decisions      []Decision `json:"decisions,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	DecidedAt      time.Time  `json:"decided_at,omitzero"`
}

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalTimedOut = "timed out"
)

// Decision is one person's answer to an approval.
type Decision struct {
	User    string    `json:"user"`
	Approve bool      `json:"approve"`
	At      time.Time `json:"at"`
	Source  string    `json:"source"` // slack | console
}

// Mention writes a user id as chat shows a person: "<@U0OPS1>".
func Mention(user string) string { return "<@" + user + ">" }

// Decided says how an approval was decided: "approved by <@U1>, <@U2>".
func (ap *Approval) Decided() string {
	var by []string
	for _, d := range ap.Decisions {
		if d.Approve == (ap.State == ApprovalApproved) {
			by = append(by, Mention(d.User))
		}
	}
	switch ap.State {
	case ApprovalApproved:
		return "approved by " + strings.Join(by, ", ")
	case ApprovalDenied:
		return "denied by " + strings.Join(by, ", ")
	case ApprovalTimedOut:
		return "timed out"
	}
	return ap.State
}

// DecisionText is the decision as later steps and answers show it: approved,
// denied, or "timed out after 30m0s".
func (ap *Approval) DecisionText() string {
	if ap.State == ApprovalTimedOut {
		return "timed out after " + ap.Deadline.Sub(ap.CreatedAt).Round(time.Second).String()
	}
	return ap.State
}
