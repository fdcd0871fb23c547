package main

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/awsevents"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/engine"
	"github.com/switchboardhq/switchboard/imap"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/web"
)

// Trigger sources are all or nothing for what the config decides: serve
// builds every queue consumer and mailbox poller before it listens, and one
// whose settings cannot work stops it with a problem located in the config
// file. What only the network decides (a mail server down, an SQS endpoint
// refusing) is retried with backoff by the source's own Run, logged as a
// warning, and shown in /readyz and the console until it works again.

// triggerSources are the config's mailboxes and queues, ready to run.
type triggerSources struct {
	pollers   []*imap.Poller
	consumers []*awsevents.Consumer
	health    *sourceHealth
}

// buildSources makes a poller for every mailbox and a consumer for every
// queue, handing their events to events. Nothing here reaches a server;
// a queue's AWS configuration is loaded (environment, shared files). Every
// source that cannot work is a problem at its line in the config file.
func buildSources(ctx context.Context, cfg *config.Config, events switchboard.EventHandler, logger *slog.Logger) (*triggerSources, config.Problems) {
	s := &triggerSources{health: newSourceHealth(logger)}
	var problems config.Problems
	for _, q := range cfg.Queues {
		name := "queue:" + q.Name
		secret := q.AccessKeySecret.Value()
		consumer, err := awsevents.NewConsumer(ctx, awsevents.Queue{Name: q.Name, URL: q.URL, Region: q.Region, Endpoint: q.Endpoint,
			Profile: q.Profile, RoleARN: q.AssumeRole.RoleARN, ExternalID: q.AssumeRole.ExternalID, AccessKeyID: q.AccessKeyID,
			AccessKeySecret: secret}, events, logger.With("source", name))
		if err != nil {
			problems = append(problems, sourceProblems(cfg.File, q.Line, "queues."+q.Name, err, secret)...)
			continue
		}
		consumer.ReportFunc = s.health.add(name, secret)
		s.consumers = append(s.consumers, consumer)
	}
	for _, mb := range cfg.Mailboxes {
		name := "mailbox:" + mb.Name
		password := mb.Password.Value()
		var filters []imap.Filter
		for _, wf := range cfg.Workflows {
			if t := wf.Trigger.Mail; t != nil && t.Mailbox == mb.Name {
				filters = append(filters, imap.Filter{Subject: optionalRegexp(t.Subject), From: optionalRegexp(t.From)})
			}
		}
		poller := &imap.Poller{Mailbox: imap.Mailbox{Name: mb.Name, Addr: mb.Addr, Username: mb.Username, Password: password,
			TLS: mb.TLS, Folder: mb.Folder, Filters: filters, PollInterval: mb.Poll}, Handler: events, Logger: logger.With("source", name)}
		if err := poller.Validate(); err != nil {
			problems = append(problems, sourceProblems(cfg.File, mb.Line, "mailboxes."+mb.Name, err, password)...)
			continue
		}
		poller.ReportFunc = s.health.add(name, password)
		s.pollers = append(s.pollers, poller)
	}
	return s, problems
}

// sourceProblems locates what building a trigger source returned: one
// problem per setting the adapter names (an error with a ConfigKey method),
// under key, the source's own key in the file.
func sourceProblems(file string, line int, key string, err error, secrets ...string) config.Problems {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var ps config.Problems
		for _, e := range joined.Unwrap() {
			ps = append(ps, sourceProblems(file, line, key, e, secrets...)...)
		}
		return ps
	}
	p := config.Problem{File: file, Line: line, Key: key, Msg: err.Error()}
	var setting interface {
		error
		ConfigKey() string
	}
	if errors.As(err, &setting) {
		if k := setting.ConfigKey(); k != "" {
			p.Key += "." + k
		}
		p.Msg = setting.Error()
		if switchboard.ErrorCode(setting) != switchboard.EINTERNAL {
			p.Msg = switchboard.ErrorMessage(setting)
		}
	}
	p.Msg = redact(p.Msg, secrets...)
	return config.Problems{p}
}

// start runs every source until ctx ends; mailboxes are read only while
// this process holds their lease in the store, so that one replica at a
// time reads a mailbox. The lease is renewed every few seconds while the
// mailbox answers: a replica that dies stops renewing it, and another takes
// over once it expires (mailboxLease), whatever the poll interval; so does
// one that waits out a failing mailbox, and the next one tries it in its
// turn. Every replica may read a queue: a message is deleted only once its
// run is recorded, and a redelivery starts nothing new. The returned
// channel closes when all sources have stopped.
func (s *triggerSources) start(ctx context.Context, st *store.Store, logger *slog.Logger) <-chan struct{} {
	var wg sync.WaitGroup
	for _, c := range s.consumers {
		wg.Go(func() { _ = c.Run(ctx) })
	}
	holder := engine.NewRunID(time.Now()) // this process, for the leases
	for _, p := range s.pollers {
		name := "mailbox:" + p.Name
		interval := p.PollInterval
		if interval <= 0 {
			interval = imap.DefaultPollInterval
		}
		lease := min(3*interval, mailboxLease)
		var held, failing atomic.Bool
		try := func(ctx context.Context) bool {
			lead, err := st.TryLead(ctx, name, holder, lease)
			if err != nil {
				if ctx.Err() == nil {
					logger.Warn("mailbox lease", "source", name, "err", err)
				}
				lead = false
			}
			held.Store(lead)
			return lead
		}
		report := p.ReportFunc
		p.ReportFunc = func(err error, next time.Duration) {
			failing.Store(err != nil)
			if report != nil {
				report(err, next)
			}
		}
		p.LeadFunc = func(ctx context.Context) bool {
			lead := try(ctx)
			if !lead {
				s.health.standby(name)
			}
			return lead
		}
		// The holder renews the lease between polls, but not while it
		// waits out a failing mailbox: then the lease lapses and another
		// replica may try it (this one takes it back if still first).
		wg.Go(func() {
			t := time.NewTicker(lease / 4)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if held.Load() && !failing.Load() {
						try(ctx)
					}
				}
			}
		})
		wg.Go(func() {
			if err := p.Run(ctx); err != nil {
				logger.Error("mailbox not read", "source", name, "err", err) // Validate passed: a bug
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// mailboxLease is the longest a replica's hold on a mailbox outlives its
// last renewal (three poll intervals when that is shorter): the longest a
// dead replica's mailbox goes unread, plus the standby's next check
// (imap.StandbyCheck).
const mailboxLease = 20 * time.Second

// sourceHealth is the health of every trigger source, which /readyz and
// the console show.
type sourceHealth struct {
	logger  *slog.Logger
	nowFunc func() time.Time

	mu      sync.Mutex
	sources map[string]web.SourceHealth
}

var _ web.Sources = (*sourceHealth)(nil)

func newSourceHealth(logger *slog.Logger) *sourceHealth {
	return &sourceHealth{logger: logger, nowFunc: time.Now, sources: map[string]web.SourceHealth{}}
}

// SourceHealth returns a copy of every source's health.
func (h *sourceHealth) SourceHealth() map[string]web.SourceHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.sources)
}

// add registers a source as starting and returns the function its Run
// reports each round to. The secrets are taken out of any error it shows.
func (h *sourceHealth) add(name string, secrets ...string) func(err error, next time.Duration) {
	h.mu.Lock()
	h.sources[name] = web.SourceHealth{State: web.SourceStarting, OK: true, Since: h.nowFunc()}
	h.mu.Unlock()
	return func(err error, next time.Duration) { h.report(name, err, next, secrets) }
}

func (h *sourceHealth) report(name string, err error, next time.Duration, secrets []string) {
	now := h.nowFunc()
	h.mu.Lock()
	defer h.mu.Unlock()
	was := h.sources[name]
	if err == nil {
		if was.State == web.SourceFailing {
			h.logger.Info("trigger source works again", "source", name, "failed_for", now.Sub(was.Since).Round(time.Second), "failures", was.Failures)
		}
		if was.State != web.SourceOK {
			h.sources[name] = web.SourceHealth{State: web.SourceOK, OK: true, Since: now}
		}
		return
	}
	since := now
	if was.State == web.SourceFailing {
		since = was.Since
	}
	h.sources[name] = web.SourceHealth{State: web.SourceFailing, Since: since, Error: redact(err.Error(), secrets...),
		Failures: was.Failures + 1, NextTry: now.Add(next)}
}

// standby records that another replica reads the source.
func (h *sourceHealth) standby(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sources[name].State != web.SourceStandby {
		h.sources[name] = web.SourceHealth{State: web.SourceStandby, OK: true, Since: h.nowFunc()}
	}
}

// redact takes secrets out of a text that is shown or logged. The adapters
// never put one in their errors; this holds if a server echoes one back.
// Secrets shorter than four characters are left: replacing them would
// garble the text, and they protect nothing.
func redact(text string, secrets ...string) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			text = strings.ReplaceAll(text, s, "[redacted]")
		}
	}
	return text
}
