package slack

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"time"

	goslack "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/switchboardhq/switchboard"
)

// MaxBodyBytes is the largest request body Slack's endpoints accept; Slack's
// own payloads are a few KiB.
const MaxBodyBytes = 64 << 10

// HandlerConfig is what the HTTP endpoints need.
type HandlerConfig struct {
	// SigningSecret verifies X-Slack-Signature. Required unless
	// AllowLegacyToken is set with a VerificationToken.
	SigningSecret string
	// VerificationToken is Slack's deprecated per-app token. It is checked
	// only when AllowLegacyToken is set, and only on requests that carry no
	// signature headers.
	VerificationToken string
	AllowLegacyToken  bool
	// TeamID and AppID, when set, are the only Slack workspace (T…) and
	// app (A…) whose requests are taken.
	TeamID, AppID string
	// ResponseURLs are where a request's response_url may point
	// (hooks.slack.com, as the config has it); a request naming another
	// is refused and audited. nil checks nothing.
	ResponseURLs *switchboard.AllowList
	// NowFunc is the clock the timestamp check and ReceivedAt use; time.Now
	// when nil.
	NowFunc func() time.Time

	Commands   switchboard.CommandHandler // required
	Deliveries Deduper                    // required
	Auditor    Auditor                    // optional; rejected requests are only logged without it
	// Rejections counts the requests refused before they were verified
	// (bad or stale signatures, bodies over the limit, other workspaces)
	// and samples them into the audit log and the log; one shared by every
	// endpoint bounds them all together. Nil: a RejectSampler of its own
	// over Auditor and Logger.
	Rejections switchboard.Rejecter
	// Interactions acts on button presses; when nil they are acked and audited.
	Interactions InteractionHandler
	// Events acts on Events API events; when nil they are acked and dropped.
	Events EventHandler
	Meter  switchboard.Meter // NopMeter when nil
	Logger *slog.Logger      // discards when nil
}

// validate names the first missing or contradictory field.
func (c HandlerConfig) validate() error {
	switch {
	case c.Commands == nil:
		return errors.New("slack handler: Commands is required")
	case c.Deliveries == nil:
		return errors.New("slack handler: Deliveries is required: Slack retries events and they must be deduplicated")
	case c.SigningSecret == "" && !c.AllowLegacyToken:
		return errors.New("slack handler: no signing secret: set slack.signing_secret (App settings > Basic Information > Signing Secret)")
	case c.AllowLegacyToken && c.VerificationToken == "" && c.SigningSecret == "":
		return errors.New("slack handler: AllowLegacyToken is set but VerificationToken is empty: set slack.verification_token or slack.signing_secret")
	}
	return nil
}

func (rc *receiver) withDefaults(m switchboard.Meter, l *slog.Logger, now func() time.Time) {
	rc.meter, rc.log, rc.now = m, l, now
	if rc.meter == nil {
		rc.meter = switchboard.NopMeter{}
	}
	if rc.log == nil {
		rc.log = slog.New(slog.DiscardHandler)
	}
	if rc.now == nil {
		rc.now = time.Now
	}
	if rc.rejections == nil {
		rc.rejections = &switchboard.RejectSampler{Auditor: rc.auditor, Logger: rc.log}
	}
}

// Handler serves Slack's three request URLs. It routes on the last element
// of the path, so it can be mounted anywhere:
//
//	POST …/commands      slash commands
//	POST …/interactions  buttons and other interactive components
//	POST …/events        Events API
//
// e.g. mux.Handle("POST /slack/{kind}", h). Every request is size-limited,
// read whole and verified before any of it is parsed.
type Handler struct {
	rc             receiver
	secret         string
	token          string
	allowLegacy    bool
	endpointByName map[string]func(http.ResponseWriter, *http.Request, inbound)
}

var _ http.Handler = (*Handler)(nil)

// inbound is a verified request body and when it arrived: start for the
// ack latency, receivedAt by the configured clock for the Request.
type inbound struct {
	body       []byte
	start      time.Time
	receivedAt time.Time
}

// NewHandler returns the HTTP handler for Slack's request URLs, or an error
// naming the configuration field that is missing.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &Handler{
		rc: receiver{
			commands:     cfg.Commands,
			deliveries:   cfg.Deliveries,
			auditor:      cfg.Auditor,
			rejections:   cfg.Rejections,
			interactions: cfg.Interactions,
			events:       cfg.Events,
			teamID:       cfg.TeamID,
			appID:        cfg.AppID,
			responseURLs: cfg.ResponseURLs,
		},
		secret:      cfg.SigningSecret,
		token:       cfg.VerificationToken,
		allowLegacy: cfg.AllowLegacyToken,
	}
	h.rc.withDefaults(cfg.Meter, cfg.Logger, cfg.NowFunc)
	h.endpointByName = map[string]func(http.ResponseWriter, *http.Request, inbound){
		"commands":     h.serveCommand,
		"interactions": h.serveInteraction,
		"events":       h.serveEvent,
	}
	return h, nil
}

// ServeHTTP reads, verifies and dispatches one request from Slack.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	endpoint, ok := h.endpointByName[path.Base(r.URL.Path)]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "Slack sends POST requests only.", http.StatusMethodNotAllowed)
		return
	}
	receivedAt := h.rc.now()

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.refuse(w, r, start, http.StatusRequestEntityTooLarge, outcomeTooLarge,
				"The request body is over "+strconv.Itoa(MaxBodyBytes>>10)+" KiB.", "body over "+strconv.Itoa(MaxBodyBytes)+" bytes")
			return
		}
		h.refuse(w, r, start, http.StatusBadRequest, outcomeInvalid, "The request body could not be read.", "read body: "+err.Error())
		return
	}
	if reason := h.authenticate(r, body, receivedAt); reason != "" {
		h.refuse(w, r, start, http.StatusUnauthorized, outcomeUnauthorized, "The request could not be verified as coming from Slack.", reason)
		return
	}
	// The body was consumed above; the parsers read it again from memory.
	r.Body = io.NopCloser(bytes.NewReader(body))
	endpoint(w, r, inbound{body: body, start: start, receivedAt: receivedAt})
}

// authenticate returns why the request is not from Slack, or "".
func (h *Handler) authenticate(r *http.Request, body []byte, now time.Time) string {
	if hasSignature(r.Header) || !h.allowLegacy {
		if err := verifySignature(h.secret, r.Header, body, now); err != nil {
			return err.Error()
		}
		return ""
	}
	// Legacy token, explicitly allowed: for apps created before signing
	// secrets, or proxies that strip headers.
	got := legacyToken(path.Base(r.URL.Path), body)
	if h.token == "" || got == "" {
		return "no signature headers and no verification token"
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(h.token)) != 1 {
		return "verification token does not match"
	}
	return ""
}

// legacyToken finds the verification token where each endpoint carries it:
// a form field, the JSON in the payload field, or the JSON body.
func legacyToken(endpoint string, body []byte) string {
	var js struct {
		Token string `json:"token"`
	}
	switch endpoint {
	case "commands":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return ""
		}
		return form.Get("token")
	case "interactions":
		form, err := url.ParseQuery(string(body))
		if err != nil || json.Unmarshal([]byte(form.Get("payload")), &js) != nil {
			return ""
		}
	default:
		if json.Unmarshal(body, &js) != nil {
			return ""
		}
	}
	return js.Token
}

// reject answers a verified request that is not served, audits why and
// counts it. detail goes to the audit log and the log; sentence goes to
// the caller.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, start time.Time, status int, outcome, sentence, detail string) {
	http.Error(w, sentence, status)
	rej := h.rejection(r, status, outcome, detail)
	h.rc.log.Warn(rej.Log, rej.LogAttrs...)
	h.rc.audit(r.Context(), rej.Audit)
	h.rc.meter.RequestServed(sourceHTTP, outcome, time.Since(start))
}

// refuse answers a request that could not be verified as Slack's. Anyone
// can send those, as fast as they like: they are counted, and sampled
// into the audit log and the log.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, start time.Time, status int, outcome, sentence, detail string) {
	http.Error(w, sentence, status)
	h.rc.rejections.Reject(r.Context(), h.rejection(r, status, outcome, detail))
	h.rc.meter.RequestServed(sourceHTTP, outcome, time.Since(start))
}

func (h *Handler) rejection(r *http.Request, status int, outcome, detail string) switchboard.Rejection {
	return switchboard.Rejection{Endpoint: sourceHTTP, Outcome: outcome, Remote: r.RemoteAddr,
		Audit: switchboard.AuditEvent{Time: h.rc.now(), Kind: switchboard.AuditRequest, Subject: r.Method + " " + r.URL.Path, Outcome: outcome, Detail: detail},
		Log:   "slack request rejected", LogAttrs: []any{"path", r.URL.Path, "status", status, "reason", detail, "remote", r.RemoteAddr}}
}

func (h *Handler) serveCommand(w http.ResponseWriter, r *http.Request, in inbound) {
	sc, err := goslack.SlashCommandParse(r)
	if err != nil {
		h.reject(w, r, in.start, http.StatusBadRequest, outcomeInvalid, "The slash command form could not be parsed.", "parse form: "+err.Error())
		return
	}
	reply := h.rc.runCommand(r.Context(), sc, sourceHTTP, in.receivedAt)
	if reply.Outcome == outcomeInvalid {
		h.reject(w, r, in.start, http.StatusBadRequest, outcomeInvalid, reply.Text, "slash command without command or user_id")
		return
	}
	writeJSON(w, reply.body())
	h.rc.meter.RequestServed(sourceHTTP, reply.Outcome, time.Since(in.start))
}

func (h *Handler) serveInteraction(w http.ResponseWriter, r *http.Request, in inbound) {
	ic, err := goslack.InteractionCallbackParse(r)
	if err != nil {
		h.reject(w, r, in.start, http.StatusBadRequest, outcomeInvalid, "The interaction payload could not be parsed.", "parse payload: "+err.Error())
		return
	}
	outcome := h.rc.deliverInteraction(r.Context(), ic, sourceHTTP, in.receivedAt)
	w.WriteHeader(http.StatusOK)
	h.rc.meter.RequestServed(sourceHTTP, outcome, time.Since(in.start))
}

func (h *Handler) serveEvent(w http.ResponseWriter, r *http.Request, in inbound) {
	var outer struct {
		Type      string `json:"type"`
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(in.body, &outer); err != nil {
		h.reject(w, r, in.start, http.StatusBadRequest, outcomeInvalid, "The event body is not valid JSON.", "parse event: "+err.Error())
		return
	}
	switch outer.Type {
	case slackevents.URLVerification:
		// Answered only now, after the signature check, so that nobody but
		// Slack can make this URL look like a working events endpoint.
		writeJSON(w, map[string]string{"challenge": outer.Challenge})
		h.rc.meter.RequestServed(sourceHTTP, outcomeOK, time.Since(in.start))
		return
	case slackevents.CallbackEvent:
	default:
		// app_rate_limited and anything newer: nothing to do, and a non-200
		// would only make Slack retry.
		h.rc.log.Info("slack event ignored", "type", outer.Type)
		w.WriteHeader(http.StatusOK)
		h.rc.meter.RequestServed(sourceHTTP, outcomeIgnored, time.Since(in.start))
		return
	}

	retryNum, _ := strconv.Atoi(r.Header.Get(headerRetryNum))
	outcome, err := h.rc.deliverEvent(r.Context(), in.body, sourceHTTP, retryNum, in.receivedAt)
	var invalid *invalidError
	switch {
	case errors.As(err, &invalid):
		h.reject(w, r, in.start, http.StatusBadRequest, outcomeInvalid, "The event is malformed: "+invalid.reason+".", "event: "+invalid.reason)
		return
	case err != nil:
		// Not recorded: a 500 makes Slack deliver it again.
		http.Error(w, "Switchboard could not record this event; Slack will retry it.", http.StatusInternalServerError)
	default:
		w.WriteHeader(http.StatusOK)
	}
	h.rc.meter.RequestServed(sourceHTTP, outcome, time.Since(in.start))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}
