package slack

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
)

// fuzzHandler builds a handler whose fakes accept anything.
func fuzzHandler(t testing.TB, legacy bool) *Handler {
	t.Helper()
	h, err := NewHandler(HandlerConfig{
		SigningSecret:     vectorSecret,
		VerificationToken: vectorToken,
		AllowLegacyToken:  legacy,
		NowFunc:           func() time.Time { return vectorNow },
		Commands:          &commandsFake{ack: switchboard.Ack{Text: "ok"}},
		Deliveries:        &memDeliveries{},
		Auditor:           &auditLog{},
		Events:            &eventsFake{},
		Interactions:      &interactionsFake{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// serveSigned runs body through h as a signed POST to path.
func serveSigned(h http.Handler, path, contentType, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	ts := strconv.FormatInt(vectorNow.Unix(), 10)
	req.Header.Set(headerTimestamp, ts)
	req.Header.Set(headerSignature, sign(vectorSecret, ts, []byte(body)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func FuzzSlashCommand(f *testing.F) {
	f.Add(vectorBody)
	f.Add("command=%2Fec2&text=start+tools&user_id=U1&channel_id=C1&trigger_id=1.2.3")
	f.Add("command=%2Fec2&text=%E2%80%AE&user_id=U1")
	f.Add("command=%zz")
	f.Add("a=1&a=2&&=&;")
	f.Add("")
	h := fuzzHandler(f, false)
	f.Fuzz(func(t *testing.T, body string) {
		rec := serveSigned(h, "/slack/commands", formType, body)
		switch rec.Code {
		case http.StatusOK:
			var ack ackBody
			if err := json.Unmarshal(rec.Body.Bytes(), &ack); err != nil || ack.ResponseType != "ephemeral" || ack.Text == "" {
				t.Fatalf("200 with a bad ack %q (%v)", rec.Body.String(), err)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}

func FuzzInteractionPayload(f *testing.F) {
	f.Add(blockActionsPayload)
	f.Add(`{"type":"view_submission","view":{"state":{"values":{"b":{"a":{"type":"plain_text_input","value":"x"}}}}}}`)
	f.Add(`{"type":"block_actions","actions":[null,{"action_id":1}],"state":{"values":[]}}`)
	f.Add(`{"type":"dialog_submission","submission":{"a":"b"},"state":"x"}`)
	f.Add(`[]`)
	f.Add(`null`)
	f.Add(`{`)
	h := fuzzHandler(f, false)
	f.Fuzz(func(t *testing.T, payload string) {
		rec := serveSigned(h, "/slack/interactions", formType, "payload="+url.QueryEscape(payload))
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d for %q", rec.Code, payload)
		}
	})
}

func FuzzEventsBody(f *testing.F) {
	f.Add(mentionEvent)
	f.Add(`{"token":"` + vectorToken + `","type":"url_verification","challenge":"abc"}`)
	f.Add(`{"type":"event_callback","event_id":"E1","event":{"type":"message","channel":"C1","message":{"type":"x"}}}`)
	f.Add(`{"type":"event_callback","event_id":"E2","event":null}`)
	f.Add(`{"type":"event_callback","event_id":"E3","event":"text"}`)
	f.Add(`{"type":"event_callback","event_id":"E4","event":{"type":"reaction_added","item":{"type":3}}}`)
	f.Add(`{"type":"app_rate_limited","minute_rate_limited":1}`)
	f.Add(`[1,2]`)
	signed := fuzzHandler(f, false)
	legacy := fuzzHandler(f, true)
	f.Fuzz(func(t *testing.T, body string) {
		rec := serveSigned(signed, "/slack/events", "application/json", body)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		// Unsigned, through the legacy-token check, which parses before
		// it verifies.
		req := httptest.NewRequest(http.MethodPost, "/slack/events", strings.NewReader(body))
		rec = httptest.NewRecorder()
		legacy.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("legacy status %d for %q", rec.Code, body)
		}
	})
}
