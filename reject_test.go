package switchboard_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
)

// auditFunc is an Auditor made of a function.
type auditFunc func(context.Context, switchboard.AuditEvent) error

func (f auditFunc) Audit(ctx context.Context, e switchboard.AuditEvent) error { return f(ctx, e) }

type sampled struct {
	mu      sync.Mutex
	audited []switchboard.AuditEvent
	logs    *bytes.Buffer
	counted map[string]int
	clock   time.Time
	s       *switchboard.RejectSampler
}

func newSampled(t *testing.T) *sampled {
	h := &sampled{logs: &bytes.Buffer{}, counted: map[string]int{}, clock: time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)}
	audit := auditFunc(func(_ context.Context, e switchboard.AuditEvent) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.audited = append(h.audited, e)
		return nil
	})
	h.s = &switchboard.RejectSampler{Auditor: audit, Logger: slog.New(slog.NewTextHandler(h.logs, nil)),
		CountFunc: func(endpoint, outcome string) { h.counted[endpoint+" "+outcome]++ },
		NowFunc:   func() time.Time { return h.clock }}
	t.Cleanup(h.s.Close)
	return h
}

func (h *sampled) reject(remote string) {
	h.s.Reject(context.Background(), switchboard.Rejection{Endpoint: "slack", Outcome: "unauthorized", Remote: remote,
		Audit: switchboard.AuditEvent{Subject: "POST /slack/commands", Detail: "signature does not match the body"},
		Log:   "slack request rejected", LogAttrs: []any{"remote", remote}})
}

func (h *sampled) lines() []switchboard.AuditEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.audited)
}

func (h *sampled) logLines() int { return strings.Count(h.logs.String(), "\n") }

// A flood from one address writes its first few lines, then one summary
// when the minute ends; every rejection is counted.
func TestRejectSamplerOneSource(t *testing.T) {
	t.Parallel()
	h := newSampled(t)
	for range 20000 {
		h.reject("127.0.0.1:50000")
	}
	if got := len(h.lines()); got != switchboard.DefaultRejectsPerSource {
		t.Errorf("%d audit lines during the minute, want %d", got, switchboard.DefaultRejectsPerSource)
	}
	h.s.Flush()
	lines := h.lines()
	if len(lines) != switchboard.DefaultRejectsPerSource+1 {
		t.Fatalf("%d audit lines, want %d and a summary", len(lines), switchboard.DefaultRejectsPerSource)
	}
	if sum := lines[len(lines)-1]; sum.Outcome != "rejected" || !strings.HasPrefix(sum.Detail, "19,995 more rejected requests in the minute from 14:00:00 UTC were not written one by one: 19,995 from 127.0.0.1 (slack)") {
		t.Errorf("summary = %+v", sum)
	}
	if first := lines[0]; first.Kind != switchboard.AuditRequest || first.Outcome != "unauthorized" || first.Subject != "POST /slack/commands" {
		t.Errorf("first line = %+v", first)
	}
	if h.logLines() != len(lines) {
		t.Errorf("%d log lines for %d audit lines:\n%s", h.logLines(), len(lines), h.logs)
	}
	if h.counted["slack unauthorized"] != 20000 {
		t.Errorf("counted %v", h.counted)
	}
}

// Many addresses share the window's budget and the table of sources is
// bounded; a new minute starts afresh, closing the last one first.
func TestRejectSamplerManySources(t *testing.T) {
	t.Parallel()
	h := newSampled(t)
	h.s.Sources = 100
	for i := range 5000 {
		h.reject(fmt.Sprintf("[2001:db8::%x]:443", i))
	}
	if got := len(h.lines()); got != switchboard.DefaultRejectsPerWindow {
		t.Errorf("%d audit lines, want the window's %d", got, switchboard.DefaultRejectsPerWindow)
	}
	h.clock = h.clock.Add(time.Minute)
	h.reject("192.0.2.7:1")
	lines := h.lines()
	if len(lines) != switchboard.DefaultRejectsPerWindow+2 {
		t.Fatalf("%d audit lines, want %d, a summary and the new minute's first", len(lines), switchboard.DefaultRejectsPerWindow)
	}
	sum := lines[len(lines)-2]
	if !strings.HasPrefix(sum.Detail, "4,950 more rejected requests") || !strings.Contains(sum.Detail, "4,900 from other addresses (slack)") ||
		!strings.HasSuffix(sum.Detail, "and 46 more sources") {
		t.Errorf("summary = %q", sum.Detail)
	}
	if h.logLines() != len(lines) {
		t.Errorf("%d log lines for %d audit lines", h.logLines(), len(lines))
	}
}

// Nothing left out, no summary.
func TestRejectSamplerQuiet(t *testing.T) {
	t.Parallel()
	h := newSampled(t)
	h.reject("127.0.0.1:1")
	h.s.Flush()
	if got := len(h.lines()); got != 1 {
		t.Errorf("%d audit lines, want 1", got)
	}
}
