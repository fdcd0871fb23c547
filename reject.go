package switchboard

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rejection is a request refused before Switchboard knew who sent it: a bad
// or stale signature, a wrong shared secret, a body over the limit, a
// request from another Slack workspace or app. Anyone can send these, as
// fast as they like, so they are counted, and only sampled into the audit
// log and the log (see RejectSampler).
type Rejection struct {
	// Endpoint names what refused it, from a fixed set (slack, socket,
	// webhook, aws_events): a metrics label.
	Endpoint string
	// Outcome is why, from a fixed set (unauthorized, too_large,
	// refused...): a metrics label and the audit line's outcome.
	Outcome string
	// Remote is the peer's address (host:port or host); sampling is per
	// host and endpoint.
	Remote string
	// Audit is the audit line written when the rejection is sampled; its
	// Kind defaults to AuditRequest and its Outcome to Outcome.
	Audit AuditEvent
	// Log is the WARN line's message when sampled; LogAttrs go with it.
	Log      string
	LogAttrs []any
}

// Rejecter records rejections. RejectSampler is the one implementation;
// adapters take the interface so that tests can count.
type Rejecter interface {
	Reject(ctx context.Context, r Rejection)
}

// Defaults of RejectSampler.
const (
	DefaultRejectsPerSource = 5
	DefaultRejectsPerWindow = 50
	DefaultRejectSources    = 1000
)

// RejectSampler counts every rejection and writes the first few of each
// source in each minute to the audit log and the log (one decision for
// both, so the two never disagree); the rest of the minute is one summary
// line in each, written when the minute ends: "19,995 more rejected
// requests...". Whatever the flood, a minute adds at most PerWindow + 1
// audit lines and as many log lines, and the per-source table holds at most
// Sources entries and is emptied every minute.
type RejectSampler struct {
	Auditor interface {
		Audit(ctx context.Context, e AuditEvent) error
	}
	Logger *slog.Logger
	// CountFunc counts every rejection (metrics); nil counts nothing.
	CountFunc func(endpoint, outcome string)
	// PerSource and PerWindow bound the lines written one by one per
	// source and in all, per Window (a minute by default).
	PerSource, PerWindow int
	Window               time.Duration
	// Sources bounds the sources told apart in a window; the rest share
	// one entry ("other").
	Sources int
	NowFunc func() time.Time

	mu      sync.Mutex
	start   time.Time // of the current window; zero when none is open
	written int
	sources map[string]*rejectSource
	timer   *time.Timer
	closed  bool
}

var _ Rejecter = (*RejectSampler)(nil)

type rejectSource struct {
	endpoint, host string
	written        int
	suppressed     int
}

func (s *RejectSampler) now() time.Time {
	if s.NowFunc != nil {
		return s.NowFunc()
	}
	return time.Now()
}

func (s *RejectSampler) window() time.Duration { return cmp.Or(s.Window, time.Minute) }

// Reject counts r and, when its source is still within its share of the
// window, writes its audit line and its log line.
func (s *RejectSampler) Reject(ctx context.Context, r Rejection) {
	if s.CountFunc != nil {
		s.CountFunc(r.Endpoint, r.Outcome)
	}
	host := r.Remote
	if h, _, err := net.SplitHostPort(r.Remote); err == nil {
		host = h
	}
	now := s.now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if !s.start.IsZero() && now.Sub(s.start) >= s.window() {
		// The timer has not fired yet (or was late): close the window here.
		s.mu.Unlock()
		s.Flush()
		s.mu.Lock()
	}
	if s.start.IsZero() {
		s.start, s.written, s.sources = now, 0, map[string]*rejectSource{}
		s.timer = time.AfterFunc(s.window(), s.Flush)
	}
	key := r.Endpoint + " " + host
	src, ok := s.sources[key]
	if !ok {
		if len(s.sources) >= cmp.Or(s.Sources, DefaultRejectSources) {
			key, host = r.Endpoint+" other", "other addresses"
			src = s.sources[key]
		}
		if src == nil {
			src = &rejectSource{endpoint: r.Endpoint, host: host}
			s.sources[key] = src
		}
	}
	sample := src.written < cmp.Or(s.PerSource, DefaultRejectsPerSource) && s.written < cmp.Or(s.PerWindow, DefaultRejectsPerWindow)
	if sample {
		src.written++
		s.written++
	} else {
		src.suppressed++
	}
	s.mu.Unlock()
	if !sample {
		return
	}
	if s.Logger != nil && r.Log != "" {
		s.Logger.WarnContext(ctx, r.Log, r.LogAttrs...)
	}
	e := r.Audit
	e.Kind = cmp.Or(e.Kind, AuditRequest)
	e.Outcome = cmp.Or(e.Outcome, r.Outcome)
	if e.Time.IsZero() {
		e.Time = now
	}
	s.audit(ctx, e)
}

// Flush ends the current window: when rejections were left out, one
// summary line says how many and from where. It runs by itself when the
// window ends; Close calls it too.
func (s *RejectSampler) Flush() {
	s.mu.Lock()
	start, sources := s.start, s.sources
	s.start, s.sources, s.written = time.Time{}, nil, 0
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.mu.Unlock()
	var left []*rejectSource
	total := 0
	for _, src := range sources {
		if src.suppressed > 0 {
			left = append(left, src)
			total += src.suppressed
		}
	}
	if total == 0 {
		return
	}
	slices.SortFunc(left, func(a, b *rejectSource) int {
		return cmp.Or(cmp.Compare(b.suppressed, a.suppressed), cmp.Compare(a.endpoint+a.host, b.endpoint+b.host))
	})
	var parts []string
	for i, src := range left {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more sources", len(left)-5))
			break
		}
		parts = append(parts, fmt.Sprintf("%s from %s (%s)", Thousands(src.suppressed), src.host, src.endpoint))
	}
	detail := fmt.Sprintf("%s more rejected requests in the %s from %s were not written one by one: %s",
		Thousands(total), spellWindow(s.window()), start.UTC().Format("15:04:05 UTC"), strings.Join(parts, ", "))
	if s.Logger != nil {
		s.Logger.Warn("more requests rejected", "count", total, "since", start.UTC().Format(time.RFC3339), "detail", detail)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.audit(ctx, AuditEvent{Time: s.now(), Kind: AuditRequest, Subject: "rejected requests", Outcome: "rejected", Detail: detail})
}

// Close writes what the current window left out and stops sampling.
func (s *RejectSampler) Close() {
	s.Flush()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func (s *RejectSampler) audit(ctx context.Context, e AuditEvent) {
	if s.Auditor == nil {
		return
	}
	if err := s.Auditor.Audit(ctx, e); err != nil && s.Logger != nil {
		s.Logger.Error("write audit event", "subject", e.Subject, "outcome", e.Outcome, "err", err)
	}
}

func spellWindow(d time.Duration) string {
	if d == time.Minute {
		return "minute"
	}
	return d.String()
}

// Thousands writes n with a comma between thousands: 1,987.
func Thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
