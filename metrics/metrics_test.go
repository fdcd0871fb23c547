package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/metrics"
)

// counter is a RunCounter with fixed answers.
type counter struct {
	counts map[switchboard.RunState]int
	err    error
}

func (c counter) CountRunsByState(context.Context) (map[switchboard.RunState]int, error) {
	return c.counts, c.err
}

// scrape returns what /metrics serves.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200", rec.Code)
	}
	body, err := io.ReadAll(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New(counter{counts: map[switchboard.RunState]int{switchboard.RunWaiting: 3, switchboard.RunRunning: 1}}, nil)
	m.RequestServed("slack", "ok", 3*time.Millisecond)
	m.RequestServed("slack", "ok", 40*time.Millisecond)
	m.RequestServed("console", "refused", time.Millisecond)
	m.MessageSent("sent")
	m.MessageSent("sent")
	m.MessageSent("retry")

	body := scrape(t, m)
	for _, want := range []string{
		`switchboard_runs{state="waiting"} 3`,
		`switchboard_runs{state="running"} 1`,
		`switchboard_runs{state="queued"} 0`,
		`switchboard_runs{state="succeeded"} 0`,
		`switchboard_runs{state="failed"} 0`,
		`switchboard_requests_total{outcome="ok",source="slack"} 2`,
		`switchboard_requests_total{outcome="refused",source="console"} 1`,
		`switchboard_ack_seconds_count{source="slack"} 2`,
		`switchboard_ack_seconds_bucket{source="slack",le="0.005"} 1`,
		`switchboard_ack_seconds_bucket{source="slack",le="0.05"} 2`,
		`switchboard_ack_seconds_count{source="console"} 1`,
		`switchboard_messages_total{result="sent"} 2`,
		`switchboard_messages_total{result="retry"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// The runs gauge is read on every scrape, so it follows the store.
func TestMetricsRunsFollowTheStore(t *testing.T) {
	t.Parallel()
	counts := map[switchboard.RunState]int{switchboard.RunQueued: 1}
	m := metrics.New(counter{counts: counts}, nil)
	if body := scrape(t, m); !strings.Contains(body, `switchboard_runs{state="queued"} 1`) {
		t.Errorf("first scrape lacks queued 1")
	}
	counts[switchboard.RunQueued] = 5
	if body := scrape(t, m); !strings.Contains(body, `switchboard_runs{state="queued"} 5`) {
		t.Errorf("second scrape lacks queued 5")
	}
}

func TestMetricsWithoutRuns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		runs metrics.RunCounter
	}{
		{"no counter", nil},
		{"counter fails", counter{err: errors.New("database is locked")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := metrics.New(tt.runs, nil) // a nil logger must not be used
			m.MessageSent("failed")
			body := scrape(t, m)
			if strings.Contains(body, "switchboard_runs{") {
				t.Errorf("/metrics has a runs gauge without run counts:\n%s", body)
			}
			if !strings.Contains(body, `switchboard_messages_total{result="failed"} 1`) {
				t.Errorf("/metrics lacks the other metrics")
			}
		})
	}
}
