package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/awsevents"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/engine"
	"github.com/switchboardhq/switchboard/imap"
	"github.com/switchboardhq/switchboard/store"
)

// checkExpressions compiles every expression of the config (workflows,
// command policies); the problems read like the config's own
// (FILE:LINE: KEY: MESSAGE).
func checkExpressions(cfg *config.Config) config.Problems {
	var found []engine.Problem
	for _, c := range cfg.Commands {
		found = append(found, engine.CheckPolicy(c)...)
	}
	for _, wf := range cfg.Workflows {
		found = append(found, engine.CheckWorkflow(cfg.Registry(), wf)...)
	}
	var problems config.Problems
	for _, p := range found {
		problems = append(problems, config.Problem{File: cfg.File, Line: p.Line, Key: p.Key, Msg: p.Msg})
	}
	return problems
}

// buildSchedules turns the workflows' schedule triggers into cron schedules
// in their time zones.
func buildSchedules(cfg *config.Config) ([]store.Schedule, error) {
	var out []store.Schedule
	for _, wf := range cfg.Workflows {
		t := wf.Trigger.Schedule
		if t == nil {
			continue
		}
		tz := t.Timezone
		if tz == "" {
			tz = "UTC"
		}
		sched, err := cron.ParseStandard("CRON_TZ=" + tz + " " + t.Cron)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: workflows.%s.trigger.schedule.cron: %w", cfg.File, wf.Line, wf.Name, err)
		}
		out = append(out, store.Schedule{Workflow: wf.Name, Schedule: sched, RunOnStart: t.Missed == "run_once"})
	}
	return out, nil
}

func hookSecrets(cfg *config.Config) map[string]string {
	hooks := map[string]string{}
	for _, h := range cfg.Hooks {
		hooks[h.Name] = h.Secret.Value()
	}
	return hooks
}

func awsEventsHandler(cfg *config.Config, events switchboard.EventHandler, logger *slog.Logger, auditor awsevents.Auditor) http.Handler {
	if cfg.AWSEvents.Secret == "" {
		return nil
	}
	return awsevents.Handler(cfg.AWSEvents.Secret.Value(), events, logger, auditor)
}

// startPollers reads the configured SQS queues until ctx ends. Every replica
// may poll a queue: a message is deleted only once its run is recorded, and
// a redelivery starts nothing new. The returned channel closes when all
// pollers have stopped.
func startPollers(ctx context.Context, cfg *config.Config, events switchboard.EventHandler, st *store.Store, logger *slog.Logger) <-chan struct{} {
	var wg sync.WaitGroup
	for _, q := range cfg.Queues {
		consumer, err := awsevents.NewConsumer(ctx, awsevents.Queue{Name: q.Name, URL: q.URL, Region: q.Region, Endpoint: q.Endpoint,
			Profile: q.Profile, RoleARN: q.AssumeRole.RoleARN, ExternalID: q.AssumeRole.ExternalID, AccessKeyID: q.AccessKeyID,
			AccessKeySecret: q.AccessKeySecret.Value()}.WithDefaults(), events, logger.With("queue", q.Name))
		if err != nil {
			logger.Error("queue not polled", "queue", q.Name, "err", err)
			continue
		}
		wg.Go(func() { _ = consumer.Run(ctx) })
	}
	holder := engine.NewRunID(time.Now()) // this process, for the leases
	for _, mb := range cfg.Mailboxes {
		var filters []imap.Filter
		for _, wf := range cfg.Workflows {
			if t := wf.Trigger.Mail; t != nil && t.Mailbox == mb.Name {
				filters = append(filters, imap.Filter{Subject: optionalRegexp(t.Subject), From: optionalRegexp(t.From)})
			}
		}
		poller := &imap.Poller{Mailbox: imap.Mailbox{Name: mb.Name, Addr: mb.Addr, Username: mb.Username, Password: mb.Password.Value(),
			TLS: mb.TLS, Folder: mb.Folder, Filters: filters, PollInterval: mb.Poll}, Handler: events, Logger: logger.With("mailbox", mb.Name)}
		if err := poller.Mailbox.Validate(); err != nil {
			logger.Error("mailbox not polled", "mailbox", mb.Name, "err", err)
			continue
		}
		wg.Go(func() { pollWhileLeader(ctx, st, "mailbox:"+mb.Name, holder, mb.Poll, poller.PollOnce, logger) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// pollWhileLeader calls poll every interval while this process holds the
// lease called name, so that one replica at a time reads a mailbox. A
// replica that dies stops renewing the lease, and another takes over when it
// expires (three intervals).
func pollWhileLeader(ctx context.Context, st *store.Store, name, holder string, interval time.Duration, poll func(context.Context) (int, error), logger *slog.Logger) {
	if interval <= 0 {
		interval = 30 * time.Second
	}
	for {
		lead, err := st.TryLead(ctx, name, holder, 3*interval)
		if err != nil && ctx.Err() == nil {
			logger.Warn("lease", "name", name, "err", err)
		}
		if lead {
			if _, err := poll(ctx); err != nil && ctx.Err() == nil {
				logger.Warn("poll", "name", name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func optionalRegexp(pattern string) *regexp.Regexp {
	if pattern == "" {
		return nil
	}
	return regexp.MustCompile(pattern) // checked when the config loaded
}
