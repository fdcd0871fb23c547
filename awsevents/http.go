package awsevents

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// MaxBodyBytes is the largest body POST /events/aws reads: EventBridge
// events are at most 256 KiB.
const MaxBodyBytes = 256 << 10

// SecretHeader is the header that carries the shared secret, the one to
// name in the EventBridge connection's API key authorization.
const SecretHeader = "X-Switchboard-Secret"

// HTTPTrigger is the Trigger of events received by Handler.
const HTTPTrigger = "http"

// Handler serves POST /events/aws, the target of an EventBridge API
// destination. A request must carry secret in the X-Switchboard-Secret
// header or as "Authorization: Bearer <secret>"; the body is the event, as
// Parse accepts it.
//
// The status tells EventBridge what to do: 200 with {"runs":[...]} once the
// runs the event starts are durably recorded (a repeated event answers the
// runs of the first delivery), 500 when they could not be, which EventBridge
// retries for up to 24 hours, and 4xx for a request that will never work
// (401 for a wrong or missing secret, audited; 413 for a body over 256 KiB;
// 400 for a body that is not an event), which EventBridge does not retry.
//
// An empty secret refuses every request, so the endpoint is never open by
// mistake. A request without the secret is counted and sampled into the
// audit log and the log by rejections (anyone can send them, as fast as
// they like). rejections and logger may be nil; a nil rejections logs
// through a switchboard.RejectSampler of its own and audits nothing.
func Handler(secret string, h switchboard.EventHandler, logger *slog.Logger, rejections switchboard.Rejecter) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if rejections == nil {
		rejections = &switchboard.RejectSampler{Logger: logger}
	}
	return &handler{secret: []byte(secret), events: h, log: logger, rejections: rejections}
}

var _ http.Handler = (*handler)(nil)

type handler struct {
	secret     []byte
	events     switchboard.EventHandler
	log        *slog.Logger
	rejections switchboard.Rejecter
}

// runsBody is the answer to an event that was handled.
type runsBody struct {
	Runs []string `json:"runs"`
}

// errorBody is the answer to a request that was not, in the shape of the
// console's JSON API.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, switchboard.Errorf(switchboard.EINVALID, "Send events with POST."))
		return
	}
	if !h.authorized(r) {
		h.rejections.Reject(ctx, switchboard.Rejection{Endpoint: "aws_events", Outcome: "unauthorized", Remote: r.RemoteAddr,
			Audit: switchboard.AuditEvent{Time: time.Now().UTC(), Kind: switchboard.AuditRequest, Actor: r.RemoteAddr,
				Subject: "POST /events/aws", Detail: "missing or wrong shared secret"},
			Log: "refused an AWS event without the shared secret", LogAttrs: []any{"remote", r.RemoteAddr}})
		writeError(w, http.StatusUnauthorized, switchboard.Errorf(switchboard.EUNAUTHORIZED,
			"The request does not carry the shared secret in the %s header or as a bearer token.", SecretHeader))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, switchboard.Errorf(switchboard.ETOOLARGE,
				"The body is over %d KiB, the most an EventBridge event holds.", MaxBodyBytes>>10))
			return
		}
		// The client went away or sent a broken body: nothing was handled.
		writeError(w, http.StatusBadRequest, switchboard.Errorf(switchboard.EINVALID, "The body could not be read."))
		return
	}
	ev, err := Parse(body)
	if err != nil {
		h.log.WarnContext(ctx, "refused a body that is not an EventBridge event", "err", switchboard.ErrorMessage(err))
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ev.Trigger = HTTPTrigger
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = time.Now().UTC()
	}
	log := h.log.With("delivery_id", ev.DeliveryID, "kind", ev.Kind)
	runs, err := h.events.HandleEvent(ctx, ev)
	if err != nil {
		log.ErrorContext(ctx, "event not handled; EventBridge retries it", "err", err)
		writeError(w, http.StatusInternalServerError, switchboard.Errorf(switchboard.EUNAVAILABLE,
			"Switchboard could not record the runs of this event; retry it."))
		return
	}
	log.InfoContext(ctx, "event handled", "subject", ev.Subject, "runs", runs)
	if runs == nil {
		runs = []string{}
	}
	writeJSON(w, http.StatusOK, runsBody{Runs: runs})
}

// authorized reports whether r carries the shared secret. The comparison
// takes the same time whatever the guess, so the secret cannot be found a
// byte at a time.
func (h *handler) authorized(r *http.Request) bool {
	if len(h.secret) == 0 {
		return false
	}
	given := r.Header.Get(SecretHeader)
	if given == "" {
		auth := r.Header.Get("Authorization")
		if scheme, token, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
			given = strings.TrimSpace(token)
		}
	}
	// Comparing digests keeps the secret's length out of the timing too.
	g, want := sha256.Sum256([]byte(given)), sha256.Sum256(h.secret)
	return given != "" && subtle.ConstantTimeCompare(g[:], want[:]) == 1
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, errorBody{Error: switchboard.ErrorMessage(err), Code: switchboard.ErrorCode(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}
