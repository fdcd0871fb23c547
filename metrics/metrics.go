// Package metrics exposes Switchboard's Prometheus metrics: inbound requests
// and how fast they were acked, runs by state, and outgoing message results.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboardhq/switchboard"
)

// RunCounter counts runs by state; the store implements it.
type RunCounter interface {
	CountRunsByState(ctx context.Context) (map[switchboard.RunState]int, error)
}

// Metrics is a Prometheus registry with Switchboard's metrics on it.
type Metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	ack      *prometheus.HistogramVec
	messages *prometheus.CounterVec
	rejected *prometheus.CounterVec
}

var _ switchboard.Meter = (*Metrics)(nil)

// New registers the metrics. runs may be nil (no runs gauge).
func New(runs RunCounter, logger *slog.Logger) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_requests_total",
			Help: "Inbound requests by source (slack, socket, console, events) and outcome.",
		}, []string{"source", "outcome"}),
		ack: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_ack_seconds",
			Help: "Time from receiving a request to acknowledging it.",
			// Slack gives 3 s; we aim for single milliseconds.
			Buckets: []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3},
		}, []string{"source"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_messages_total",
			Help: "Outgoing chat messages by result (sent, retry, throttled, failed).",
		}, []string{"result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_requests_rejected_total",
			Help: "Requests refused before they were verified (bad or stale signature, wrong secret, body over the limit, another Slack workspace), by endpoint and outcome; only a sample of them is audited and logged.",
		}, []string{"endpoint", "outcome"}),
	}
	m.registry.MustRegister(m.requests, m.ack, m.messages, m.rejected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if runs != nil {
		m.registry.MustRegister(&runsCollector{runs: runs, logger: logger})
	}
	return m
}

// RequestServed counts a request and observes its ack latency.
func (m *Metrics) RequestServed(source, outcome string, d time.Duration) {
	m.requests.WithLabelValues(source, outcome).Inc()
	m.ack.WithLabelValues(source).Observe(d.Seconds())
}

// MessageSent counts an outgoing message result.
func (m *Metrics) MessageSent(result string) {
	m.messages.WithLabelValues(result).Inc()
}

// RequestRejected counts a request refused before it was verified; it is
// the CountFunc of switchboard.RejectSampler.
func (m *Metrics) RequestRejected(endpoint, outcome string) {
	m.rejected.WithLabelValues(endpoint, outcome).Inc()
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

var runsDesc = prometheus.NewDesc("switchboard_runs", "Runs by state, as stored.", []string{"state"}, nil)

// runsCollector reads the run counts when scraped, so every replica reports
// the shared truth rather than what it saw itself.
type runsCollector struct {
	runs   RunCounter
	logger *slog.Logger
}

func (c *runsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- runsDesc }

func (c *runsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.runs.CountRunsByState(ctx)
	if err != nil {
		if c.logger != nil {
			c.logger.Warn("metrics: count runs", "err", err)
		}
		return
	}
	for _, state := range []switchboard.RunState{switchboard.RunQueued, switchboard.RunRunning, switchboard.RunWaiting, switchboard.RunSucceeded, switchboard.RunFailed} {
		ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.GaugeValue, float64(counts[state]), string(state))
	}
}

// CountSQL exports the store's statement and commit counts (SQLite's:
// River's statements and ours), read when scraped: with the requests
// counter they give the statements and writes per command.
func (m *Metrics) CountSQL(statements, commits func() int64) {
	m.registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "switchboard_store_statements_total",
			Help: "SQL statements run against the SQLite store, River's included.",
		}, func() float64 { return float64(statements()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "switchboard_store_commits_total",
			Help: "Transactions committed to the SQLite store (each one write to its log).",
		}, func() float64 { return float64(commits()) }),
	)
}

var cloudCallsDesc = prometheus.NewDesc("switchboard_cloud_calls_total",
	"Calls made to each cloud's API, by action (DescribeInstances, StopInstances...); retries included.", []string{"cloud", "action"}, nil)

// CountCloudCalls exports the calls made to each cloud, read when scraped
// from calls: cloud name → action → count.
func (m *Metrics) CountCloudCalls(calls func() map[string]map[string]int) {
	m.registry.MustRegister(cloudCalls(calls))
}

type cloudCalls func() map[string]map[string]int

func (c cloudCalls) Describe(ch chan<- *prometheus.Desc) { ch <- cloudCallsDesc }

func (c cloudCalls) Collect(ch chan<- prometheus.Metric) {
	for cloud, actions := range c() {
		for action, n := range actions {
			ch <- prometheus.MustNewConstMetric(cloudCallsDesc, prometheus.CounterValue, float64(n), cloud, action)
		}
	}
}
