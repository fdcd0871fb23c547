package web

import (
	"context"
	"net/http"
	"time"
)

// States of a trigger source.
const (
	SourceStarting = "starting" // not read yet
	SourceOK       = "ok"       // the last round worked
	SourceFailing  = "failing"  // the last round failed; it is retried
	SourceStandby  = "standby"  // another replica reads it (mailboxes)
)

// SourceHealth is how reading one trigger source (a mailbox, an SQS queue)
// is going.
type SourceHealth struct {
	// State is SourceStarting, SourceOK, SourceFailing or SourceStandby.
	State string `json:"state"`
	// OK is false while the source is failing, true otherwise.
	OK bool `json:"ok"`
	// Since is when the source entered State: for a failing one, its first
	// failure in a row.
	Since time.Time `json:"since"`
	// Error is the last failure while failing. It never holds a secret.
	Error string `json:"error,omitempty"`
	// Failures counts the failed rounds in a row.
	Failures int `json:"failures,omitempty"`
	// NextTry is when a failing source is tried again.
	NextTry time.Time `json:"next_try,omitzero"`
}

// Sources reports the health of the trigger sources by name
// ("mailbox:aws-notices", "queue:ec2-events").
type Sources interface {
	SourceHealth() map[string]SourceHealth
}

// Readiness statuses.
const (
	statusReady    = "ready"
	statusDegraded = "degraded"  // a trigger source is failing; requests are served
	statusNotReady = "not_ready" // the store does not answer
)

// readiness is what /readyz and the console's status answer.
type readiness struct {
	Status  string                  `json:"status"`
	Error   string                  `json:"error,omitempty"`
	Sources map[string]SourceHealth `json:"sources,omitempty"`
}

// ready checks the store and collects the trigger sources' health. Only
// the store decides whether the process can serve: a failing mailbox or
// queue makes it "degraded" (still HTTP 200), since another replica would
// not read it any better and a load balancer should keep sending Slack's
// requests here.
func ready(ctx context.Context, store Store, sources Sources) (int, readiness) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r := readiness{Status: statusReady}
	if sources != nil {
		r.Sources = sources.SourceHealth()
		for _, h := range r.Sources {
			if !h.OK {
				r.Status = statusDegraded
			}
		}
	}
	if err := store.Ping(ctx); err != nil {
		r.Status, r.Error = statusNotReady, "store: "+err.Error()
		return http.StatusServiceUnavailable, r
	}
	return http.StatusOK, r
}

// handleReadyz answers 200 while the store answers ("ready", or "degraded"
// when a trigger source is failing) and 503 when it does not, with the
// detail as JSON.
func handleReadyz(store Store, sources Sources) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, body := ready(r.Context(), store, sources)
		writeJSON(w, code, body)
	})
}

// handleStatus answers the console what /readyz says, always with 200 so
// the page can show it.
func handleStatus(store Store, sources Sources) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, body := ready(r.Context(), store, sources)
		writeJSON(w, http.StatusOK, body)
	})
}
