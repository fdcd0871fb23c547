package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Events starts the workflows an event triggers: it implements
// switchboard.EventHandler for the mail, cloud event, webhook and schedule
// triggers.
type Events struct {
	Workflows []switchboard.WorkflowSpec
	Runs      RunCreator
	NowFunc   func() time.Time
}

var _ switchboard.EventHandler = (*Events)(nil)

// HandleEvent writes a run for every workflow the event triggers and
// returns their ids once they are durably recorded. A redelivered event (same
// DeliveryID) returns the runs the first delivery started.
func (e *Events) HandleEvent(ctx context.Context, ev switchboard.Event) ([]string, error) {
	now := time.Now()
	if e.NowFunc != nil {
		now = e.NowFunc()
	}
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = now
	}
	var ids []string
	for _, wf := range e.Workflows {
		if !Triggers(wf.Trigger, wf.Name, ev) {
			continue
		}
		run := &switchboard.Run{
			ID:       NewRunID(now),
			Workflow: wf.Name,
			Cloud:    wf.Cloud,
			State:    switchboard.RunQueued,
			Request: switchboard.Request{Source: ev.Source, DeliveryID: ev.DeliveryID + "/" + wf.Name, ChannelID: wf.Channel,
				Text: ev.Subject, ReceivedAt: ev.ReceivedAt, Event: &ev},
			Plan:      Plan(wf),
			CreatedAt: now,
			UpdatedAt: now,
		}
		subject := strings.TrimSpace(ev.Source + " " + ev.Trigger + ": " + firstNonEmpty(ev.Subject, ev.Kind, ev.DeliveryID))
		existing, err := e.Runs.CreateRun(ctx, run, []switchboard.AuditEvent{{Time: now, Kind: switchboard.AuditRequest, RunID: run.ID,
			Actor: ev.From, Channel: wf.Channel, Subject: subject, Outcome: "received", Detail: "starts workflow " + wf.Name}})
		if err != nil {
			return ids, fmt.Errorf("start workflow %s: %w", wf.Name, err)
		}
		if existing != nil {
			run = existing
		}
		ids = append(ids, run.ID)
	}
	return ids, nil
}

// Triggers reports whether trigger t of the workflow named name fires for
// ev.
func Triggers(t switchboard.TriggerSpec, name string, ev switchboard.Event) bool {
	if ev.Workflow != "" {
		return ev.Workflow == name
	}
	switch {
	case t.Mail != nil:
		return ev.Source == "mail" && ev.Trigger == t.Mail.Mailbox && matches(t.Mail.Subject, ev.Subject) && matches(t.Mail.From, ev.From)
	case t.Event != nil:
		if ev.Source != "aws" || t.Event.Queue != "" && ev.Trigger != t.Event.Queue {
			return false
		}
		var env struct {
			Source string `json:"source"`
			Detail struct {
				State string `json:"state"`
			} `json:"detail"`
		}
		_ = json.Unmarshal(ev.Data, &env)
		return (t.Event.Source == "" || t.Event.Source == env.Source) &&
			(len(t.Event.DetailType) == 0 || slices.Contains(t.Event.DetailType, ev.Kind)) &&
			(len(t.Event.State) == 0 || slices.Contains(t.Event.State, env.Detail.State))
	case t.Webhook != "":
		return ev.Source == "webhook" && ev.Trigger == t.Webhook
	case t.Schedule != nil:
		return ev.Source == "schedule" && ev.Trigger == name
	}
	return false
}

// triggerPatterns holds the mail triggers' patterns compiled, by their
// text: each is compiled once, not once per mail.
var triggerPatterns sync.Map // string → *regexp.Regexp

// matches reports whether s matches pattern; an empty pattern matches
// anything. Patterns are checked when the config loads.
func matches(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	v, ok := triggerPatterns.Load(pattern)
	if !ok {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return false
		}
		v, _ = triggerPatterns.LoadOrStore(pattern, re)
	}
	return v.(*regexp.Regexp).MatchString(s)
}
