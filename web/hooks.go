package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/switchboardhq/switchboard"
)

// maxHookBody bounds a webhook body.
const maxHookBody = 256 << 10

// handleHook serves POST /hooks/NAME: the body must be signed with the
// hook's secret, as GitHub signs its webhooks: X-Hub-Signature-256 (or
// X-Switchboard-Signature) = "sha256=" + hex(HMAC-SHA256(secret, body)). A
// verified call starts the workflows whose trigger is the hook, once per
// body and UTC day: the signature covers the body and nothing else, so a
// captured call replayed under a new delivery id (X-Delivery-ID,
// X-GitHub-Delivery) must not start anything again, and a sender's retry
// of the same delivery starts nothing either. The same body on another day
// is a new call.
//
// A call that is not verified (too large, wrong signature) is counted and
// sampled into the audit log and the log by rejections.
func handleHook(secrets map[string]string, events switchboard.EventHandler, rejections switchboard.Rejecter, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		secret, ok := secrets[name]
		if !ok || events == nil {
			writeError(w, r, logger, switchboard.Errorf(switchboard.ENOTFOUND, "%s", "No webhook called "+name+" is configured."))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHookBody))
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			rejections.Reject(r.Context(), hookRejection(r, name, "too_large", "body over 256 KiB"))
			writeError(w, r, logger, switchboard.Errorf(switchboard.ETOOLARGE, "%s", "The body is larger than 256 KiB."))
			return
		} else if err != nil {
			writeError(w, r, logger, switchboard.Errorf(switchboard.EINVALID, "%s", "Could not read the body."))
			return
		}
		sig := r.Header.Get("X-Hub-Signature-256")
		if sig == "" {
			sig = r.Header.Get("X-Switchboard-Signature")
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if !hmac.Equal([]byte(sig), []byte(want)) {
			rejections.Reject(r.Context(), hookRejection(r, name, "unauthorized", "missing or wrong signature"))
			writeError(w, r, logger, switchboard.Errorf(switchboard.EUNAUTHORIZED, "%s", "The signature is missing or wrong: send X-Hub-Signature-256: sha256=HMAC-SHA256(secret, body)."))
			return
		}
		now := time.Now()
		sum := sha256.Sum256(body)
		ev := switchboard.Event{Source: "webhook", Trigger: name, DeliveryID: name + ":" + hex.EncodeToString(sum[:16]) + ":" + now.UTC().Format("2006-01-02"),
			Kind: r.Header.Get("X-GitHub-Event"), ReceivedAt: now}
		if json.Valid(body) {
			ev.Data = body
		} else {
			ev.Body = string(body)
		}
		runs, err := events.HandleEvent(r.Context(), ev)
		if err != nil {
			logger.Error("webhook", "hook", name, "err", err)
			writeError(w, r, logger, switchboard.Errorf(switchboard.EUNAVAILABLE, "%s", "The call could not be recorded; send it again."))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"runs": runs})
	})
}

func hookRejection(r *http.Request, name, outcome, detail string) switchboard.Rejection {
	return switchboard.Rejection{Endpoint: "webhook", Outcome: outcome, Remote: r.RemoteAddr,
		Audit: switchboard.AuditEvent{Time: time.Now(), Subject: "webhook " + name, Detail: detail},
		Log:   "webhook call rejected", LogAttrs: []any{"hook", name, "reason", detail, "remote", r.RemoteAddr}}
}

// handleApproval answers an approval request from the console, as the chosen
// user: POST /console/api/approvals/ID {"user":"U0OPS1","approve":true}.
// With a chat platform configured, actor puts the logged-in person in the
// chosen user's place.
func handleApproval(approvals Approver, logger *slog.Logger, actor func(r *http.Request, picked string) (string, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if approvals == nil {
			writeError(w, r, logger, switchboard.Errorf(switchboard.ENOTFOUND, "%s", "Approvals are not available."))
			return
		}
		var body struct {
			User    string `json:"user"`
			Approve bool   `json:"approve"`
		}
		if err := decodeJSON(w, r, &body); err != nil {
			writeError(w, r, logger, err) // 400, not a silent 200
			return
		}
		user, err := actor(r, body.User)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		body.User = user
		if body.User == "" {
			writeError(w, r, logger, switchboard.Errorf(switchboard.EINVALID, "%s", "Pick the user who answers."))
			return
		}
		ap, text, err := approvals.Decide(r.Context(), r.PathValue("id"), body.User, body.Approve, "console")
		if err != nil {
			logger.Error("console approval", "err", err)
			writeError(w, r, logger, err)
			return
		}
		state := ""
		if ap != nil {
			state = ap.State
		}
		writeJSON(w, http.StatusOK, map[string]any{"text": text, "state": state})
	})
}
