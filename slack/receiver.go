package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	goslack "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/switchboardhq/switchboard"
)

// receiver is what the HTTP handler and the Socket Mode loop share: one
// function per kind of delivery, so both transports dedupe, hand off and
// answer the same way. It knows nothing about how the answer travels back.
type receiver struct {
	commands     switchboard.CommandHandler
	deliveries   Deduper
	auditor      Auditor
	rejections   switchboard.Rejecter
	interactions InteractionHandler
	events       EventHandler
	meter        switchboard.Meter
	log          *slog.Logger
	now          func() time.Time
	// teamID and appID, when set, are the only workspace and app whose
	// requests are taken: a signing secret shared by mistake, or an app
	// installed in a second workspace, is not a way in.
	teamID, appID string
	// responseURLs are where a response_url may point; nil checks nothing.
	responseURLs *switchboard.AllowList
}

// settingResponseURLs names the setting a refused response_url is told
// against.
const settingResponseURLs = "slack.response_url_hosts"

// badResponseURL says why a request's response_url is refused, or "". An
// empty one is no answer address at all, which is not refused: the answer
// then goes with chat.postMessage.
func (rc *receiver) badResponseURL(raw string) string {
	if rc.responseURLs == nil || raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "its response_url is not a URL"
	}
	if err := rc.responseURLs.CheckURL(u, settingResponseURLs); err != nil {
		return "its response_url points outside Slack: " + switchboard.ErrorMessage(err)
	}
	return ""
}

// textBadResponseURL is what a person sees when the request's answer
// address is refused: Switchboard did nothing.
const textBadResponseURL = "Switchboard did nothing: this request asks for its answer at an address that is not Slack's (see slack.response_url_hosts)."

// foreign says why a request from team and app is refused, or "".
func (rc *receiver) foreign(team, app string) string {
	switch {
	case rc.teamID != "" && team != rc.teamID:
		return "the request comes from another Slack workspace (team " + team + ")"
	case rc.appID != "" && app != rc.appID:
		return "the request comes from another Slack app (" + app + ")"
	}
	return ""
}

// refuseForeign records a request from another workspace or app: its
// signature is good, but anyone with an app of their own can send these,
// so they are counted and sampled per team like unsigned ones.
func (rc *receiver) refuseForeign(ctx context.Context, msg, source, team, why string, e switchboard.AuditEvent, attrs ...any) {
	e.Kind, e.Outcome, e.Detail = switchboard.AuditRequest, outcomeRefused, why
	if e.Time.IsZero() {
		e.Time = rc.now()
	}
	rc.rejections.Reject(ctx, switchboard.Rejection{Endpoint: source, Outcome: outcomeRefused, Remote: "team " + team, Audit: e,
		Log: msg, LogAttrs: append([]any{"source", source, "why", why}, attrs...)})
}

// textForeign is what a person typing in another workspace or app sees.
const textForeign = "Switchboard does not serve this Slack workspace or app."

// Sentences a person sees in the ephemeral ack.
const (
	textDuplicate   = "Switchboard already received this command; its answer is on the way."
	textNotRecorded = "Switchboard could not record this request, so it did nothing; please try again in a moment."
	textAccepted    = "Got it."
)

// Keys under which deliveries are deduplicated. Events share one namespace
// across HTTP and Socket Mode, so switching transports does not replay them.
func interactionKey(triggerID string) string { return "slack/interaction/" + triggerID }
func eventKey(eventID string) string         { return "slack/event/" + eventID }

// commandReply is the ephemeral ack of a slash command.
type commandReply struct {
	Text    string
	Outcome string
}

// ackBody is the JSON Slack shows to the person who typed the command.
type ackBody struct {
	ResponseType string `json:"response_type"`
	Text         string `json:"text"`
}

func (r commandReply) body() ackBody { return ackBody{ResponseType: "ephemeral", Text: r.Text} }

// runCommand turns a verified slash command into a Request, hands it to the
// command handler and says what to answer. It never fails: every error
// becomes a sentence, because Slack shows a non-200 ack only as
// "failed with the error http_client_error", which nobody can act on.
func (rc *receiver) runCommand(ctx context.Context, sc goslack.SlashCommand, source string, receivedAt time.Time) commandReply {
	if sc.Command == "" || sc.UserID == "" {
		return commandReply{Outcome: outcomeInvalid, Text: "This is not a slash command Switchboard understands: the command or user_id is missing."}
	}
	req := switchboard.Request{
		DeliveryID:  sc.TriggerID,
		Source:      source,
		Command:     sc.Command,
		Text:        sc.Text,
		UserID:      sc.UserID,
		UserName:    sc.UserName,
		ChannelID:   sc.ChannelID,
		ChannelName: sc.ChannelName,
		TeamID:      sc.TeamID,
		ResponseURL: sc.ResponseURL,
		ReceivedAt:  receivedAt,
	}
	// Only a refusal or an error is logged here: the logger with the
	// command's attributes is made then, not for every command.
	log := func() *slog.Logger {
		return rc.log.With("source", source, "command", sc.Command, "user", sc.UserID, "channel", sc.ChannelID)
	}
	if why := rc.foreign(sc.TeamID, sc.APIAppID); why != "" {
		rc.refuseForeign(ctx, "slash command refused", source, sc.TeamID, why, switchboard.AuditEvent{Actor: sc.UserID, Channel: sc.ChannelID, Subject: sc.Command},
			"command", sc.Command, "user", sc.UserID, "channel", sc.ChannelID)
		return commandReply{Outcome: outcomeRefused, Text: textForeign}
	}
	if why := rc.badResponseURL(sc.ResponseURL); why != "" {
		log().Warn("slash command refused", "why", why)
		rc.audit(ctx, switchboard.AuditEvent{Kind: switchboard.AuditRequest, Actor: sc.UserID, Channel: sc.ChannelID,
			Subject: sc.Command, Outcome: outcomeRefused, Detail: why})
		return commandReply{Outcome: outcomeRefused, Text: textBadResponseURL}
	}

	// Slack does not retry slash commands over HTTP, but Socket Mode
	// redelivers an envelope that was not acked in time, and a signed
	// request can be replayed within the five-minute window. The
	// CommandHandler deduplicates on DeliveryID (trigger_id, unique per
	// invocation) in the same transaction that writes the run, so a repeat
	// gets the first run's ack and starts nothing; no separate write here.
	ack, err := rc.commands.HandleCommand(ctx, req)
	switch code := switchboard.ErrorCode(err); code {
	case "":
		text := ack.Text
		if text == "" {
			text = textAccepted
		}
		return commandReply{Outcome: outcomeOK, Text: text}
	case switchboard.EINTERNAL:
		log().Error("handle slash command", "err", err)
		return commandReply{Outcome: outcomeError, Text: switchboard.ErrorMessage(err)}
	default:
		log().Info("slash command refused", "code", code, "err", err)
		return commandReply{Outcome: outcomeRefused, Text: switchboard.ErrorMessage(err)}
	}
}

// errRetryLater marks a delivery that was not recorded: the transport must
// not ack it, so that Slack delivers it again.
var errRetryLater = errors.New("delivery not recorded")

// invalidError is a delivery that can never be processed; retrying it will
// not help, so the transport acks (Socket Mode) or answers 400 (HTTP).
type invalidError struct{ reason string }

func (e *invalidError) Error() string { return e.reason }

// deliverEvent records an event_callback delivery by its event_id and, the
// first time only, hands the inner event to the event handler. A retry that
// arrives after the first attempt was recorded is a duplicate and starts
// nothing; one that arrives because recording failed is processed.
//
// It returns the outcome, and errRetryLater (wrapped) when the delivery must
// not be acked, or an *invalidError.
func (rc *receiver) deliverEvent(ctx context.Context, raw []byte, source string, retryNum int, receivedAt time.Time) (string, error) {
	var cb slackevents.EventsAPICallbackEvent
	if err := json.Unmarshal(raw, &cb); err != nil {
		return outcomeInvalid, &invalidError{"the event is not valid JSON"}
	}
	if cb.Type != slackevents.CallbackEvent {
		return outcomeInvalid, &invalidError{fmt.Sprintf("event type %q is not %q", cb.Type, slackevents.CallbackEvent)}
	}
	if cb.EventID == "" || cb.InnerEvent == nil {
		return outcomeInvalid, &invalidError{"the event has no event_id or no event"}
	}
	var head struct {
		Type string `json:"type"`
	}
	// The inner event must at least be an object with a type; otherwise no
	// handler could route it.
	if err := json.Unmarshal(*cb.InnerEvent, &head); err != nil {
		return outcomeInvalid, &invalidError{"the inner event is not a JSON object"}
	}
	log := rc.log.With("source", source, "event_id", cb.EventID, "event_type", head.Type, "retry", retryNum)
	if why := rc.foreign(cb.TeamID, cb.APIAppID); why != "" {
		rc.refuseForeign(ctx, "event refused", source, cb.TeamID, why, switchboard.AuditEvent{Subject: "slack event " + head.Type + " " + cb.EventID},
			"event_id", cb.EventID, "event_type", head.Type)
		return outcomeRefused, nil
	}

	key := eventKey(cb.EventID)
	first, err := rc.deliveries.FirstDelivery(ctx, key)
	if err != nil {
		log.Error("record event delivery", "err", err)
		return outcomeError, fmt.Errorf("record event %s: %w: %w", cb.EventID, errRetryLater, err)
	}
	if !first {
		log.Debug("duplicate event delivery")
		return outcomeDuplicate, nil
	}
	if rc.events == nil {
		log.Debug("no event handler configured")
		return outcomeIgnored, nil
	}

	ev := Event{
		ID:         cb.EventID,
		Type:       head.Type,
		TeamID:     cb.TeamID,
		Source:     source,
		RetryNum:   retryNum,
		ReceivedAt: receivedAt,
		Raw:        *cb.InnerEvent,
	}
	// slack-go refuses inner types it does not know; Raw still carries them.
	if parsed, err := slackevents.ParseEvent(raw, slackevents.OptionNoVerifyToken()); err == nil {
		ev.Inner = parsed.InnerEvent.Data
	}
	if err := rc.events.HandleEvent(ctx, ev); err != nil {
		log.Error("handle event", "err", err)
		if rc.forget(ctx, key) {
			return outcomeError, fmt.Errorf("handle event %s: %w: %w", cb.EventID, errRetryLater, err)
		}
		rc.audit(ctx, switchboard.AuditEvent{
			Kind:    switchboard.AuditRequest,
			Subject: "slack event " + head.Type + " " + cb.EventID,
			Outcome: outcomeError,
			Detail:  "the event handler failed and the delivery cannot be retried; see the log",
		})
		return outcomeError, nil
	}
	return outcomeOK, nil
}

// deliverInteraction hands a button press (or other interaction) to the
// interaction handler once per trigger_id. Failures are logged and audited;
// the ack is the same either way, since Slack ignores its body.
func (rc *receiver) deliverInteraction(ctx context.Context, ic goslack.InteractionCallback, source string, receivedAt time.Time) string {
	subject := interactionSubject(ic)
	log := rc.log.With("source", source, "interaction", subject, "user", ic.User.ID, "channel", ic.Channel.ID)
	if why := rc.foreign(ic.Team.ID, ic.APIAppID); why != "" {
		rc.refuseForeign(ctx, "interaction refused", source, ic.Team.ID, why, switchboard.AuditEvent{Actor: ic.User.ID, Channel: ic.Channel.ID, Subject: subject},
			"interaction", subject, "user", ic.User.ID, "channel", ic.Channel.ID)
		return outcomeRefused
	}
	if why := rc.badResponseURL(ic.ResponseURL); why != "" {
		log.Warn("interaction refused", "why", why)
		rc.audit(ctx, switchboard.AuditEvent{Kind: switchboard.AuditRequest, Actor: ic.User.ID, Channel: ic.Channel.ID,
			Subject: subject, Outcome: outcomeRefused, Detail: why})
		return outcomeRefused
	}
	if rc.interactions == nil {
		rc.audit(ctx, switchboard.AuditEvent{
			Kind:    switchboard.AuditRequest,
			Actor:   ic.User.ID,
			Channel: ic.Channel.ID,
			Subject: subject,
			Outcome: outcomeIgnored,
			Detail:  "no interaction handler is configured",
		})
		return outcomeIgnored
	}
	var key string
	if ic.TriggerID != "" {
		key = interactionKey(ic.TriggerID)
		first, err := rc.deliveries.FirstDelivery(ctx, key)
		if err != nil {
			log.Error("record interaction delivery", "err", err)
			return outcomeError
		}
		if !first {
			log.Info("duplicate interaction")
			return outcomeDuplicate
		}
	}
	err := rc.interactions.HandleInteraction(ctx, Interaction{Source: source, ReceivedAt: receivedAt, Callback: ic})
	if err == nil {
		return outcomeOK
	}
	outcome := outcomeRefused
	if switchboard.ErrorCode(err) == switchboard.EINTERNAL {
		outcome = outcomeError
		rc.forget(ctx, key)
	}
	log.Error("handle interaction", "err", err)
	rc.audit(ctx, switchboard.AuditEvent{
		Kind:    switchboard.AuditRequest,
		Actor:   ic.User.ID,
		Channel: ic.Channel.ID,
		Subject: subject,
		Outcome: outcome,
		Detail:  switchboard.ErrorMessage(err),
	})
	return outcome
}

// interactionSubject names an interaction for the audit log:
// "block_actions approve,deny".
func interactionSubject(ic goslack.InteractionCallback) string {
	var ids []string
	for _, a := range ic.ActionCallback.BlockActions {
		if a != nil {
			ids = append(ids, a.ActionID)
		}
	}
	s := "slack " + string(ic.Type)
	if len(ids) > 0 {
		s += " " + strings.Join(ids, ",")
	} else if ic.CallbackID != "" {
		s += " " + ic.CallbackID
	}
	return s
}

// forget undoes a recorded delivery after its handling failed, when the
// Deduper can, and reports whether it did.
func (rc *receiver) forget(ctx context.Context, key string) bool {
	f, ok := rc.deliveries.(deliveryForgetter)
	if key == "" || !ok {
		return false
	}
	if err := f.ForgetDelivery(ctx, key); err != nil {
		rc.log.Error("forget delivery", "key", key, "err", err)
		return false
	}
	return true
}

// audit writes e, stamped with the receiver's clock; a failure is logged,
// never returned, because the request it describes is already answered.
func (rc *receiver) audit(ctx context.Context, e switchboard.AuditEvent) {
	if rc.auditor == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = rc.now()
	}
	if err := rc.auditor.Audit(ctx, e); err != nil {
		rc.log.Error("write audit event", "subject", e.Subject, "outcome", e.Outcome, "err", err)
	}
}
