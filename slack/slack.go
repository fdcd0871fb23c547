// Package slack connects Switchboard to Slack: it verifies and parses what
// Slack sends (slash commands, button presses, Events API deliveries) over
// HTTP or Socket Mode, turns them into switchboard.Requests for the command
// handler, acknowledges within Slack's three seconds, posts the answers that
// runs produce, and writes the app manifest an admin pastes into Slack.
//
// HTTP and Socket Mode share one code path per kind of delivery (see
// receiver), so a command behaves the same whichever way it arrived.
package slack

import (
	"context"
	"encoding/json"
	"time"

	goslack "github.com/slack-go/slack"

	"github.com/switchboardhq/switchboard"
)

// Deduper remembers deliveries so a retried or replayed one starts nothing
// new. FirstDelivery reports true the first time it sees key, and must have
// recorded the key durably before it returns true.
type Deduper interface {
	FirstDelivery(ctx context.Context, key string) (bool, error)
}

// deliveryForgetter is what a Deduper may also offer so that a delivery whose
// handling failed after it was recorded can be processed again when Slack
// retries it. Without it, such a delivery is audited as failed and its
// retries are answered as duplicates.
type deliveryForgetter interface {
	ForgetDelivery(ctx context.Context, key string) error
}

// Auditor writes a line of the audit log.
type Auditor interface {
	Audit(ctx context.Context, e switchboard.AuditEvent) error
}

// Interaction is a press on something Switchboard posted (a block_actions
// payload, a view submission...), verified and decoded.
type Interaction struct {
	Source     string // slack | socket
	ReceivedAt time.Time
	Callback   goslack.InteractionCallback
}

// InteractionHandler acts on an interaction, for example an approval
// decision. It answers through the interaction's response_url or through
// runs, not through its return value: Slack ignores the body of the ack.
type InteractionHandler interface {
	HandleInteraction(ctx context.Context, in Interaction) error
}

// Event is one Events API delivery (event_callback), deduplicated by ID.
type Event struct {
	ID         string // Slack's event_id
	Type       string // the inner event's type, e.g. "app_mention"
	TeamID     string
	Source     string // slack | socket
	RetryNum   int    // 0 for the first attempt, as Slack numbers retries
	ReceivedAt time.Time
	// Inner is the inner event decoded by slack-go (*slackevents.AppMentionEvent...),
	// nil when slack-go does not know the type; Raw always holds it as sent.
	Inner any
	Raw   json.RawMessage
}

// EventHandler acts on an Events API event. It should only record work
// (write a run) and return: Slack expects the ack within three seconds.
type EventHandler interface {
	HandleEvent(ctx context.Context, e Event) error
}

// Sources named in Requests, Events and metrics.
const (
	sourceHTTP   = "slack"
	sourceSocket = "socket"
)

// Outcomes counted with Meter.RequestServed and written to the audit log.
const (
	outcomeOK           = "ok"
	outcomeRefused      = "refused"   // the command handler said no, with a sentence
	outcomeError        = "error"     // something inside Switchboard failed
	outcomeDuplicate    = "duplicate" // a retry or replay of a delivery already recorded
	outcomeIgnored      = "ignored"   // nothing is configured to act on it
	outcomeInvalid      = "invalid"
	outcomeUnauthorized = "unauthorized"
	outcomeTooLarge     = "too_large"
)
