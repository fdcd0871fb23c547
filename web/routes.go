package web

import (
	"net/http"

	"github.com/switchboardhq/switchboard"
)

// routes lists every route the server answers. Probes, /metrics and the
// Slack endpoints need no console login (Slack's verify their signature);
// console pages need a login, on loopback too, and the console API needs
// that plus the page's CSRF token.
func (s *Server) routes() http.Handler {
	cfg := s.cfg
	mux := http.NewServeMux()

	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(cfg.Store, cfg.Sources))
	mux.Handle("GET /metrics", orNotFound(cfg.Metrics, "Metrics are not configured."))

	mux.Handle("POST /slack/commands", orNotFound(cfg.Slack.Commands, slackNotConfigured))
	mux.Handle("POST /slack/interactions", orNotFound(cfg.Slack.Interactions, slackNotConfigured))
	mux.Handle("POST /slack/events", orNotFound(cfg.Slack.Events, slackNotConfigured))

	page := consolePage{
		CSRF:     s.csrf,
		Commands: cfg.CommandNames,
		Version:  switchboard.Version,
		// The console acts as the logged-in person where a real chat
		// platform knows people; the demo lets you pick who you are.
		AsOperator: cfg.AsOperator,
	}
	mux.Handle("GET /{$}", s.requirePage(s.handleConsolePage(page)))
	mux.Handle("GET /console/login", s.handleLoginPage())
	mux.Handle("POST /console/login", s.handleLogin())
	mux.Handle("POST /console/logout", s.handleLogout())
	mux.Handle("GET /static/", handleStatic())

	mux.Handle("POST /console/api/command", s.requireAPI(handleCommand(cfg.Commands, cfg.Store, cfg.Logger, cfg.Meter, cfg.NowFunc, s.actor)))
	mux.Handle("GET /console/api/transcript", s.requireAPI(handleTranscript(cfg.Store, cfg.Details, cfg.Logger)))
	mux.Handle("GET /console/api/runs", s.requireAPI(handleRuns(cfg.Store, cfg.Logger)))
	mux.Handle("GET /console/api/runs/{id}", s.requireAPI(handleRun(cfg.Details, cfg.Logger)))
	mux.Handle("GET /console/api/approvals", s.requireAPI(handleApprovals(cfg.Details, cfg.Logger)))
	mux.Handle("GET /console/api/fleet", s.requireAPI(handleFleet(cfg.Fleet)))
	mux.Handle("GET /console/api/names", s.requireAPI(handleNames(cfg.Names, cfg.Logger)))
	mux.Handle("GET /console/api/audit", s.requireAPI(handleAudit(cfg.Store, cfg.Logger, cfg.NowFunc)))
	mux.Handle("GET /console/api/status", s.requireAPI(handleStatus(cfg.Store, cfg.Sources)))
	mux.Handle("POST /console/api/approvals/{id}", s.requireAPI(handleApproval(cfg.Approvals, cfg.Logger, s.actor)))

	mux.Handle("POST /events/aws", orNotFound(cfg.AWSEvents, "AWS events are not configured: add aws_events: { secret: ... } to the config."))
	mux.Handle("POST /hooks/{name}", handleHook(cfg.Hooks, cfg.Events, cfg.Rejections, cfg.Logger))

	return mux
}

const slackNotConfigured = "Slack is not configured: add a slack: section with signing_secret."

// handleHealthz answers while the process is up.
func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	})
}

// orNotFound serves h, or answers 404 with the sentence when h is nil
// because the feature is not configured.
func orNotFound(h http.Handler, sentence string) http.Handler {
	if h != nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, sentence, http.StatusNotFound)
	})
}
