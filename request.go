package switchboard

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Request is one thing a person (or an event) asked for: a slash command from
// Slack, Socket Mode or the console playground.
type Request struct {
	// DeliveryID identifies this delivery for deduplication (Slack's
	// trigger_id, an event_id, a console request id).
	DeliveryID  string    `json:"delivery_id,omitempty"`
	Source      string    `json:"source"` // slack | socket | console
	Command     string    `json:"command"`
	Text        string    `json:"text"`
	UserID      string    `json:"user_id"`
	UserName    string    `json:"user_name,omitempty"`
	ChannelID   string    `json:"channel_id"`
	ChannelName string    `json:"channel_name,omitempty"`
	TeamID      string    `json:"team_id,omitempty"`
	ResponseURL string    `json:"response_url,omitempty"`
	ReceivedAt  time.Time `json:"received_at"`
	// Event is set when the run was started by an event (mail, cloud event,
	// webhook, schedule) rather than a person.
	Event *Event `json:"event,omitempty"`
}

// Ack is the immediate answer to a request, shown only to the person who
// asked. RunID is empty when nothing was started.
type Ack struct {
	Text  string `json:"text"`
	RunID string `json:"run_id,omitempty"`
}

// CommandHandler turns a verified request into a durable run, or into a
// refusal, and says what to answer right away. Every chat adapter calls it.
type CommandHandler interface {
	HandleCommand(ctx context.Context, req Request) (Ack, error)
}

// Access says who may use a command and where. Users holds user ids with
// groups already expanded; an empty Channels allows any channel.
type Access struct {
	Users    []string `json:"users,omitempty"`
	Channels []string `json:"channels,omitempty"`
}

// Allows reports whether user may act in channel, and when not, why.
func (a Access) Allows(user, channel string) (bool, string) {
	if !slices.Contains(a.Users, user) {
		return false, "you are not on this command's allow list"
	}
	if len(a.Channels) > 0 && !slices.Contains(a.Channels, channel) {
		return false, "this command is not allowed in this channel"
	}
	return true, ""
}

// TargetSpec is a named set of instances a command may touch: one instance id
// or a tag selector.
type TargetSpec struct {
	Alias     string            `json:"alias"`
	ID        string            `json:"id,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	ElasticIP string            `json:"elastic_ip,omitempty"`
}

// Target is one thing a command names: a configured alias, an instance id or
// a tag selector, resolved against the command's instances when the run
// describes them.
type Target struct {
	Text      string            `json:"text"` // as the user typed it
	Alias     string            `json:"alias,omitempty"`
	ID        string            `json:"id,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	ElasticIP string            `json:"elastic_ip,omitempty"`
}

// Label names the target for a person: "tools (i-0123…)", "web (role=web)".
func (t Target) Label() string {
	switch {
	case t.Alias != "" && t.ID != "":
		return t.Alias + " (" + t.ID + ")"
	case t.Alias != "":
		return t.Alias + " (" + TagText(t.Tags) + ")"
	case t.ID != "":
		return t.ID
	}
	return TagText(t.Tags)
}

// InstanceCommand is a parsed instance command: what to do, on what. It is
// the parameter of the built-in "instances" step.
type InstanceCommand struct {
	Command string   `json:"command"`
	Action  string   `json:"action"`
	Targets []Target `json:"targets"`
	// Scope is every instance the command may touch; ids and selectors
	// given by the user are checked against it.
	Scope  []TargetSpec `json:"scope"`
	DryRun bool         `json:"dry_run,omitempty"`
	// Policy is the command's policy as it was when the run started.
	Policy []PolicyRule `json:"policy,omitempty"`
}

// AckText is the immediate answer. It is written before anything was
// looked at, so it promises nothing the run may not do: the instances may
// already be where the command wants them, a policy may hold them back,
// and a dry run changes nothing.
func (c InstanceCommand) AckText() string {
	labels := make([]string, len(c.Targets))
	for i, t := range c.Targets {
		labels[i] = t.Label()
	}
	what := strings.Join(labels, ", ")
	if c.DryRun {
		switch c.Action {
		case ActionStart, ActionStop, ActionReboot:
			return "Dry run, nothing will change: checking whether " + what + " could be " + map[string]string{
				ActionStart: "started", ActionStop: "stopped", ActionReboot: "rebooted"}[c.Action] + " — I'll report back here."
		}
	}
	switch c.Action {
	case ActionStart:
		return "Checking " + what + " to start what is stopped — I'll report back here."
	case ActionStop:
		return "Checking " + what + " to stop what is running — I'll report back here."
	case ActionReboot:
		return "Checking " + what + " to reboot what is running — I'll report back here."
	case ActionList:
		return "Listing the instances " + c.Command + " may touch — I'll report back here."
	}
	return "Checking " + what + " — I'll report back here."
}

// InScope reports whether a command whose scope is scope may touch inst: its
// id is listed, or its tags include one of the selectors.
func InScope(scope []TargetSpec, inst Instance) bool {
	for _, s := range scope {
		if s.ID != "" && s.ID == inst.ID {
			return true
		}
		if s.ID == "" && len(s.Tags) > 0 && HasTags(inst.Tags, s.Tags) {
			return true
		}
	}
	return false
}

// CommandSpec is a slash command as configured: which cloud it acts on, who
// may use it, what it may touch and which actions it offers.
type CommandSpec struct {
	Name      string       `json:"name"` // "/ec2"
	Cloud     string       `json:"cloud"`
	Access    Access       `json:"access"`
	Instances []TargetSpec `json:"instances"`
	Actions   []string     `json:"actions"`
	// Policy rules are checked, in order, for every instance an action
	// would change; the first rule whose condition holds decides.
	Policy []PolicyRule `json:"policy,omitempty"`
}

// PolicyRule refuses an action, or makes it wait for an approval, when its
// condition holds. The condition is an expression over action, user,
// channel and instance (id, name, state, type, tags).
type PolicyRule struct {
	If string `json:"if"`
	// Deny, when set, refuses the action with this reason.
	Deny string `json:"deny,omitempty"`
	// Approval, when set, makes the action wait for it.
	Approval *ApprovalRule `json:"approval,omitempty"`
	Line     int           `json:"line,omitempty"`
}

// ApprovalRule is who must approve, how many, and until when.
type ApprovalRule struct {
	Approvers      []string      `json:"approvers"` // user ids, groups expanded
	Quorum         int           `json:"quorum,omitempty"`
	AllowRequester bool          `json:"allow_requester,omitempty"`
	Timeout        time.Duration `json:"timeout,omitempty"`    // default 30m
	OnTimeout      string        `json:"on_timeout,omitempty"` // deny (default) | approve
}

// Action names of the instance commands.
const (
	ActionStatus = "status"
	ActionStart  = "start"
	ActionStop   = "stop"
	ActionReboot = "reboot"
	ActionList   = "list"
)

// AllActions lists the instance actions in the order help texts show them.
var AllActions = []string{ActionStatus, ActionStart, ActionStop, ActionReboot, ActionList}

// Meter records what /metrics reports. Adapters call it; the metrics package
// implements it. A nil Meter is not allowed: use NopMeter.
type Meter interface {
	// RequestServed counts an inbound request (source: slack, socket,
	// console, events; outcome: ok, refused, invalid, unauthorized...) and
	// how long it took to answer.
	RequestServed(source, outcome string, d time.Duration)
	// MessageSent counts an outgoing message by result (sent, retry, failed).
	MessageSent(result string)
}

// NopMeter records nothing.
type NopMeter struct{}

func (NopMeter) RequestServed(string, string, time.Duration) {}
func (NopMeter) MessageSent(string)                          {}

// Event is something that happened outside chat that may start a workflow: a
// mail, a cloud event (EventBridge through SQS or HTTPS), a webhook call, a
// schedule tick.
type Event struct {
	Source string `json:"source"` // mail | aws | webhook | schedule
	// DeliveryID identifies the event for deduplication: the mail's
	// Message-ID, the EventBridge event id, the webhook's delivery id, the
	// schedule and tick. A redelivery with the same id starts nothing new.
	DeliveryID string `json:"delivery_id"`
	// Trigger names what received it: the mailbox, the queue, the hook, the
	// scheduled workflow.
	Trigger string `json:"trigger,omitempty"`
	// Kind is the event's type where it has one: "EC2 Instance State-change
	// Notification", "AWS Health Event".
	Kind    string `json:"kind,omitempty"`
	Subject string `json:"subject,omitempty"`
	From    string `json:"from,omitempty"`
	Body    string `json:"body,omitempty"`
	// Data is the event's own JSON (EventBridge event, webhook body), when it
	// has one.
	Data       json.RawMessage `json:"data,omitempty"`
	ReceivedAt time.Time       `json:"received_at"`
	// Workflow, when set, is the one workflow the event is for (a sweep
	// hands an instance that died unnoticed to the cleanup workflow that
	// names it), whatever its trigger would match.
	Workflow string `json:"workflow,omitempty"`
}

// EventHandler starts the workflows an event triggers. It returns once their
// runs are durably recorded, so that the caller may then delete the SQS
// message or mark the mail seen; a repeated delivery starts nothing new and
// returns the runs the first one started.
type EventHandler interface {
	HandleEvent(ctx context.Context, ev Event) (runIDs []string, err error)
}

// CommandHelp says what a slash command does in its users' words, for the
// Slack app manifest and help texts: "Start, stop, reboot, list or check
// instances: tools, web", used as "status | start | stop [target]".
type CommandHelp struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Usage       string `json:"usage,omitempty"`
}
