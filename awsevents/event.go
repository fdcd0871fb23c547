// Package awsevents brings AWS cloud events into Switchboard: EC2 instance
// state changes and AWS Health notices, routed by an EventBridge rule either
// to an SQS queue that a Consumer polls, or to the HTTPS endpoint
// POST /events/aws that Handler serves. Both turn the EventBridge event into
// a switchboard.Event and hand it to a switchboard.EventHandler, which starts
// the workflows the event triggers.
//
// EventBridge delivers at least once and retries a target for 24 hours, so
// the same event may arrive more than once, through the queue or the
// endpoint. Every delivery carries the EventBridge event id as DeliveryID,
// and the handler starts nothing new for an id it has seen.
//
// See docs/events.md for the rules, the queue and the IAM permissions.
package awsevents

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/switchboardhq/switchboard"
)

// Source is the switchboard.Event Source of every event from this package.
const Source = "aws"

// Detail types Switchboard knows how to summarise; any other EventBridge
// event is accepted too and summarised by its detail type and source.
const (
	KindStateChange = "EC2 Instance State-change Notification"
	KindHealth      = "AWS Health Event"
)

// maxIDLength bounds the event id, which becomes a deduplication key.
// EventBridge ids are UUIDs.
const maxIDLength = 256

// maxSubject bounds Event.Subject, which chat messages and the console show
// on one line.
const maxSubject = 200

// envelope is an EventBridge event as EventBridge delivers it to a target.
type envelope struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// snsNotification is an SNS message as SNS delivers it to an SQS queue
// without raw message delivery: the event is a JSON string in Message.
type snsNotification struct {
	Type      string `json:"Type"`
	MessageID string `json:"MessageId"`
	TopicArn  string `json:"TopicArn"`
	Message   string `json:"Message"`
}

// stateChangeDetail is the detail of an EC2 Instance State-change
// Notification.
type stateChangeDetail struct {
	InstanceID string `json:"instance-id"`
	State      string `json:"state"`
}

// healthDetail is the part of an AWS Health Event's detail Switchboard uses.
type healthDetail struct {
	Service           string `json:"service"`
	EventTypeCode     string `json:"eventTypeCode"`
	EventTypeCategory string `json:"eventTypeCategory"`
	StatusCode        string `json:"statusCode"`
	AffectedEntities  []struct {
		EntityValue string `json:"entityValue"`
	} `json:"affectedEntities"`
	EventDescription []struct {
		Language          string `json:"language"`
		LatestDescription string `json:"latestDescription"`
	} `json:"eventDescription"`
}

// Parse turns the JSON of an EventBridge event into a switchboard.Event:
// DeliveryID is the event's id, Kind its detail-type, From its source
// ("aws.ec2"), Subject a one-line summary, Body the English description of an
// AWS Health event, Data the event's JSON and ReceivedAt its time (zero when
// the event has none). Trigger is left for the caller to fill in.
//
// body may be the event itself, as EventBridge writes it to an SQS queue or
// posts it to an API destination, or an SNS notification whose Message is the
// event, as SNS writes it to a queue without raw message delivery.
//
// The errors are *switchboard.Error values with code EINVALID whose message
// says what is wrong with body.
func Parse(body []byte) (switchboard.Event, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return switchboard.Event{}, switchboard.Errorf(switchboard.EINVALID,
			"The body is empty; expected an EventBridge event as JSON.")
	}
	if !json.Valid(body) {
		return switchboard.Event{}, switchboard.Errorf(switchboard.EINVALID,
			"The body is not valid JSON; expected an EventBridge event as a JSON object.")
	}
	if body[0] != '{' {
		return switchboard.Event{}, switchboard.Errorf(switchboard.EINVALID,
			"The body is JSON but not an object; expected an EventBridge event as a JSON object.")
	}
	if sns, ok := snsMessage(body); ok {
		if sns.Type != "Notification" {
			return switchboard.Event{}, switchboard.Errorf(switchboard.EINVALID,
				"The body is an SNS %s message, which carries no event; only SNS notifications are accepted.", oneLine(sns.Type, 40))
		}
		inner := bytes.TrimSpace([]byte(sns.Message))
		if len(inner) == 0 || !json.Valid(inner) || inner[0] != '{' {
			return switchboard.Event{}, switchboard.Errorf(switchboard.EINVALID,
				"The body is an SNS notification whose Message is not a JSON object; expected an EventBridge event in it.")
		}
		if _, nested := snsMessage(inner); nested {
			return switchboard.Event{}, switchboard.Errorf(switchboard.EINVALID,
				"The body is an SNS notification of another SNS message; expected an EventBridge event in it.")
		}
		return parseEvent(inner, "The SNS notification's Message")
	}
	return parseEvent(body, "The body")
}

// snsMessage reports whether body, a valid JSON object, is an SNS message
// rather than an event: a notification, or another type from a topic. An
// EventBridge event has neither field.
func snsMessage(body []byte) (snsNotification, bool) {
	// A field of another type than SNS gives it leaves Type empty, and the
	// body is then taken for an event.
	var sns snsNotification
	_ = json.Unmarshal(body, &sns)
	return sns, sns.Type == "Notification" || sns.Type != "" && sns.TopicArn != ""
}

// parseEvent parses body, a valid JSON object, as an EventBridge event.
// what names body in error messages.
func parseEvent(body []byte, what string) (switchboard.Event, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return switchboard.Event{}, switchboard.Errorf(switchboard.EINVALID,
				"%s is not an EventBridge event: its %q is a JSON %s where EventBridge puts a %s.", what, oneLine(te.Field, 60), te.Value, jsonKind(te.Type.Kind().String()))
		}
		return switchboard.Event{}, switchboard.Errorf(switchboard.EINVALID,
			"%s is not an EventBridge event (%s).", what, oneLine(err.Error(), 120))
	}
	var missing []string
	// A blank field (only spaces) is as missing as an absent one: the
	// event's kind and source are shown and matched trimmed.
	if strings.TrimSpace(env.ID) == "" {
		missing = append(missing, `"id"`)
	}
	if strings.TrimSpace(env.DetailType) == "" {
		missing = append(missing, `"detail-type"`)
	}
	if strings.TrimSpace(env.Source) == "" {
		missing = append(missing, `"source"`)
	}
	detail := bytes.TrimSpace(env.Detail)
	if len(detail) == 0 || detail[0] != '{' {
		missing = append(missing, `"detail" object`)
	}
	if len(missing) > 0 {
		return switchboard.Event{}, switchboard.Errorf(switchboard.EINVALID,
			"%s is not an EventBridge event: it has no %s.", what, strings.Join(missing, ", "))
	}
	if len(env.ID) > maxIDLength {
		return switchboard.Event{}, switchboard.Errorf(switchboard.EINVALID,
			"The event id is %d characters long; EventBridge ids are at most %d.", len(env.ID), maxIDLength)
	}
	ev := switchboard.Event{
		Source:     Source,
		DeliveryID: env.ID,
		Kind:       oneLine(env.DetailType, maxSubject),
		From:       oneLine(env.Source, maxSubject),
		Data:       json.RawMessage(bytes.Clone(body)),
	}
	if t, err := time.Parse(time.RFC3339, env.Time); err == nil {
		ev.ReceivedAt = t.UTC()
	}
	ev.Subject, ev.Body = summary(env)
	return ev, nil
}

// summary says in one line what the event is about, and for AWS Health
// events returns the notice's English text as the body.
func summary(env envelope) (subject, body string) {
	switch env.DetailType {
	case KindStateChange:
		var d stateChangeDetail
		if json.Unmarshal(env.Detail, &d) == nil && d.InstanceID != "" && d.State != "" {
			return oneLine(d.InstanceID+" is now "+d.State, maxSubject), ""
		}
	case KindHealth:
		var d healthDetail
		if json.Unmarshal(env.Detail, &d) == nil && d.EventTypeCode != "" {
			s := d.EventTypeCode
			if d.Service != "" {
				s = d.Service + ": " + s
			}
			if ids := healthInstanceIDs(env, d); len(ids) > 0 {
				s += " for " + listIDs(ids)
			}
			return oneLine(s, maxSubject), healthDescription(d)
		}
	}
	return oneLine(env.DetailType+" from "+env.Source, maxSubject), ""
}

// healthDescription is the English text of a Health notice, or the first
// one when none is in English.
func healthDescription(d healthDetail) string {
	for _, desc := range d.EventDescription {
		if strings.HasPrefix(desc.Language, "en") {
			return desc.LatestDescription
		}
	}
	if len(d.EventDescription) > 0 {
		return d.EventDescription[0].LatestDescription
	}
	return ""
}

// listIDs names up to three ids and counts the rest.
func listIDs(ids []string) string {
	const shown = 3
	if len(ids) <= shown {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ids[:shown], ", "), len(ids)-shown)
}

// oneLine makes s fit on one line of at most n runes: control characters
// become spaces and a longer text is cut with an ellipsis.
func oneLine(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}

// instanceIDPattern matches EC2 instance ids, old (8 hex digits) and new
// (17).
var instanceIDPattern = regexp.MustCompile(`^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$`)

// instanceARNPattern matches an EC2 instance ARN in any partition.
var instanceARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:ec2:[^:]*:[^:]*:instance/(i-[0-9a-f]+)$`)

// InstanceIDs returns the EC2 instance ids an event is about, each once, in
// the order the event names them: detail.instance-id of a state change, the
// affected entities of an AWS Health event that are instance ids, and the
// event's resources that are instance ARNs or instance ids. It returns nil
// for an event that names no instance or whose Data is not an EventBridge
// event.
func InstanceIDs(ev switchboard.Event) []string {
	var env envelope
	if json.Unmarshal(ev.Data, &env) != nil {
		return nil
	}
	// A field of an unexpected type leaves the others decoded, which is
	// what is wanted here: take whatever ids the event does name.
	var sc stateChangeDetail
	_ = json.Unmarshal(env.Detail, &sc)
	var h healthDetail
	_ = json.Unmarshal(env.Detail, &h)
	ids := appendID(nil, sc.InstanceID)
	for _, id := range healthInstanceIDs(env, h) {
		ids = appendID(ids, id)
	}
	return ids
}

// healthInstanceIDs returns the instance ids among a Health event's affected
// entities and resources.
func healthInstanceIDs(env envelope, d healthDetail) []string {
	var ids []string
	for _, e := range d.AffectedEntities {
		ids = appendID(ids, e.EntityValue)
	}
	for _, r := range env.Resources {
		ids = appendID(ids, resourceInstanceID(r))
	}
	return ids
}

// resourceInstanceID returns the instance id of an instance ARN or of a
// bare instance id (AWS Health lists bare ids in resources), else "".
func resourceInstanceID(r string) string {
	if m := instanceARNPattern.FindStringSubmatch(r); m != nil {
		return m[1]
	}
	return r
}

// appendID appends id to ids when it is an instance id not in ids yet.
func appendID(ids []string, id string) []string {
	if !instanceIDPattern.MatchString(id) {
		return ids
	}
	for _, have := range ids {
		if have == id {
			return ids
		}
	}
	return append(ids, id)
}

// State returns the state an EC2 Instance State-change Notification reports
// ("pending", "running", "stopping", "stopped", "shutting-down",
// "terminated"), and "" for any other event.
func State(ev switchboard.Event) string {
	var env envelope
	if json.Unmarshal(ev.Data, &env) != nil || env.DetailType != KindStateChange {
		return ""
	}
	var d stateChangeDetail
	if json.Unmarshal(env.Detail, &d) != nil {
		return ""
	}
	return d.State
}

// jsonKind names a Go kind the way JSON does.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "slice":
		return "list"
	default:
		return "value of another type"
	}
}
