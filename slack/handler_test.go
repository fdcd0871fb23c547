package slack

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack/slackevents"

	"github.com/switchboardhq/switchboard"
)

func TestCommandOfficialVector(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)

	status, body := b.post(t, "/slack/commands", formType, vectorBody, map[string]string{
		headerTimestamp: vectorTimestamp,
		headerSignature: vectorSignature,
	})
	if status != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", status, body)
	}
	var ack struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
	}
	if err := json.Unmarshal([]byte(body), &ack); err != nil {
		t.Fatalf("ack is not JSON: %v: %s", err, body)
	}
	if ack.ResponseType != "ephemeral" || ack.Text != "Starting tools (i-0123)." {
		t.Errorf("ack = %+v", ack)
	}

	reqs := b.commands.requests()
	if len(reqs) != 1 {
		t.Fatalf("command handler called %d times, want 1", len(reqs))
	}
	want := switchboard.Request{
		DeliveryID:  "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
		Source:      "slack",
		Command:     "/webhook-collect",
		Text:        "",
		UserID:      "U2CERLKJA",
		UserName:    "roadrunner",
		ChannelID:   "G8PSS9T3V",
		ChannelName: "foobar",
		TeamID:      "T1DC2JH3J",
		ResponseURL: "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN",
		ReceivedAt:  vectorNow,
	}
	if reqs[0] != want {
		t.Errorf("request =\n%+v\nwant\n%+v", reqs[0], want)
	}
	if got := b.meter.all(); len(got) != 1 || got[0] != (served{"slack", "ok"}) {
		t.Errorf("meter = %v, want one slack/ok", got)
	}
}

func TestRejectedRequests(t *testing.T) {
	t.Parallel()
	ts := vectorTimestamp
	tooOld := strconv.FormatInt(vectorNow.Add(-5*time.Minute-time.Second).Unix(), 10)
	tooNew := strconv.FormatInt(vectorNow.Add(5*time.Minute+time.Second).Unix(), 10)
	big := vectorBody + "&text=" + strings.Repeat("a", MaxBodyBytes)
	tests := []struct {
		name        string
		path        string
		body        string
		header      map[string]string
		wantStatus  int
		wantOutcome string
		wantDetail  string
	}{
		{"tampered body", "/slack/commands", strings.Replace(vectorBody, "text=", "text=terminate", 1),
			map[string]string{headerTimestamp: ts, headerSignature: vectorSignature}, 401, "unauthorized", "does not match"},
		{"stale timestamp", "/slack/commands", vectorBody,
			map[string]string{headerTimestamp: tooOld, headerSignature: sign(vectorSecret, tooOld, []byte(vectorBody))}, 401, "unauthorized", "5 minutes"},
		{"timestamp from the future", "/slack/commands", vectorBody,
			map[string]string{headerTimestamp: tooNew, headerSignature: sign(vectorSecret, tooNew, []byte(vectorBody))}, 401, "unauthorized", "5 minutes"},
		{"missing headers", "/slack/commands", vectorBody, nil, 401, "unauthorized", "missing"},
		{"missing timestamp", "/slack/events", `{"type":"url_verification","challenge":"c"}`,
			map[string]string{headerSignature: vectorSignature}, 401, "unauthorized", "missing"},
		{"malformed signature", "/slack/interactions", vectorBody,
			map[string]string{headerTimestamp: ts, headerSignature: "v0=nothex"}, 401, "unauthorized", "malformed signature"},
		{"legacy token only, not allowed", "/slack/commands", vectorBody, nil, 401, "unauthorized", "missing"},
		{"oversized body", "/slack/commands", big,
			map[string]string{headerTimestamp: ts, headerSignature: sign(vectorSecret, ts, []byte(big))}, 413, "too_large", "body over"},
		{"oversized unsigned body", "/slack/events", big, nil, 413, "too_large", "body over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			status, body := b.post(t, tt.path, formType, tt.body, tt.header)
			if status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", status, body, tt.wantStatus)
			}
			if len(b.commands.requests()) != 0 || len(b.events.all()) != 0 || len(b.interactions.all()) != 0 {
				t.Error("a rejected request reached a handler")
			}
			audit := b.audit.all()
			if len(audit) != 1 {
				t.Fatalf("audit = %+v, want one event", audit)
			}
			e := audit[0]
			if e.Kind != "request" || e.Outcome != tt.wantOutcome || !strings.Contains(e.Detail, tt.wantDetail) {
				t.Errorf("audit event = %+v, want outcome %q, detail containing %q", e, tt.wantOutcome, tt.wantDetail)
			}
			for _, secret := range []string{vectorSecret, vectorSignature[3:], tt.header[headerSignature]} {
				if secret != "" && strings.Contains(e.Detail, secret) {
					t.Errorf("audit detail %q leaks %q", e.Detail, secret)
				}
			}
			if got := b.meter.all(); len(got) != 1 || got[0] != (served{"slack", tt.wantOutcome}) {
				t.Errorf("meter = %v, want slack/%s", got, tt.wantOutcome)
			}
		})
	}
}

func TestLegacyToken(t *testing.T) {
	t.Parallel()
	legacy := func(c *HandlerConfig) { c.AllowLegacyToken = true }
	wrongToken := strings.Replace(vectorBody, vectorToken, "guessed", 1)
	tests := []struct {
		name       string
		tweak      func(*HandlerConfig)
		path       string
		body       string
		header     map[string]string
		wantStatus int
	}{
		{"token accepted when allowed", legacy, "/slack/commands", vectorBody, nil, 200},
		{"wrong token", legacy, "/slack/commands", wrongToken, nil, 401},
		{"no token", legacy, "/slack/commands", "command=%2Fec2&user_id=U1", nil, 401},
		{"token on an event", legacy, "/slack/events", `{"token":"` + vectorToken + `","type":"url_verification","challenge":"c"}`, nil, 200},
		{"token in an interaction payload", legacy, "/slack/interactions", "payload=" + url.QueryEscape(`{"type":"block_actions","token":"`+vectorToken+`"}`), nil, 200},
		{"a bad signature is not rescued by a good token", legacy, "/slack/commands", vectorBody,
			map[string]string{headerTimestamp: vectorTimestamp, headerSignature: "v0=" + strings.Repeat("0", 64)}, 401},
		{"empty configured token never matches", func(c *HandlerConfig) { c.AllowLegacyToken, c.VerificationToken = true, "" },
			"/slack/commands", strings.Replace(vectorBody, vectorToken, "", 1), nil, 401},
		{"token rejected by default", nil, "/slack/commands", vectorBody, nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.tweak)
			status, body := b.post(t, tt.path, formType, tt.body, tt.header)
			if status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", status, body, tt.wantStatus)
			}
		})
	}
}

func TestCommandAcks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		ack         switchboard.Ack
		err         error
		wantText    string
		wantOutcome string
	}{
		{"accepted", switchboard.Ack{Text: "Stopping tools."}, nil, "Stopping tools.", "ok"},
		{"accepted without text", switchboard.Ack{}, nil, "Got it.", "ok"},
		{"refused", switchboard.Ack{}, switchboard.Errorf(switchboard.EFORBIDDEN, "You are not on the allow list of /ec2."), "You are not on the allow list of /ec2.", "refused"},
		{"invalid", switchboard.Ack{}, switchboard.Errorf(switchboard.EINVALID, "Unknown action \"strat\": try status, start, stop."), "Unknown action \"strat\": try status, start, stop.", "refused"},
		{"internal", switchboard.Ack{}, errStoreDown, "Something went wrong inside Switchboard; the error is in its log.", "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.commands.ack, b.commands.err = tt.ack, tt.err
			body := "command=%2Fec2&text=stop+tools&user_id=U1&channel_id=C1&trigger_id=T-" + url.QueryEscape(tt.name)
			status, got := b.postSigned(t, "/slack/commands", formType, body, nil)
			// Refusals are still 200: Slack shows anything else as a
			// bare "http_client_error" instead of the sentence.
			if status != http.StatusOK {
				t.Fatalf("status = %d, want 200", status)
			}
			want, _ := json.Marshal(ackBody{ResponseType: "ephemeral", Text: tt.wantText})
			if strings.TrimSpace(got) != string(want) {
				t.Errorf("ack = %s, want %s", got, want)
			}
			if strings.Contains(got, errStoreDown.Error()) {
				t.Error("internal error text reached the user")
			}
			if m := b.meter.all(); len(m) != 1 || m[0].outcome != tt.wantOutcome {
				t.Errorf("meter = %v, want outcome %s", m, tt.wantOutcome)
			}
		})
	}
}

// A replayed slash command reaches the CommandHandler with the same
// DeliveryID (the trigger_id): the handler deduplicates it in the same
// transaction that writes the run (see the store's tests), so the slack
// adapter spends no extra write on it.
func TestCommandReplayKeepsDeliveryID(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	body := "command=%2Fec2&text=start&user_id=U1&channel_id=C1&trigger_id=123.456"
	for range 2 {
		if status, got := b.postSigned(t, "/slack/commands", formType, body, nil); status != 200 {
			t.Fatalf("status = %d (%s)", status, got)
		}
	}
	reqs := b.commands.requests()
	if len(reqs) != 2 || reqs[0].DeliveryID != "123.456" || reqs[1].DeliveryID != "123.456" {
		t.Fatalf("requests = %+v, want two with DeliveryID 123.456", reqs)
	}
}

func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path, contentType, body string
	}{
		{"form with a bad escape", "/slack/commands", formType, "command=%zz"},
		{"form without a command", "/slack/commands", formType, "text=start&user_id=U1"},
		{"interaction without payload", "/slack/interactions", formType, "foo=bar"},
		{"interaction payload not JSON", "/slack/interactions", formType, "payload=%7Bnope"},
		{"event not JSON", "/slack/events", "application/json", `{"type":`},
		{"event_callback without event_id", "/slack/events", "application/json", `{"type":"event_callback","event":{"type":"app_mention"}}`},
		{"event_callback without event", "/slack/events", "application/json", `{"type":"event_callback","event_id":"Ev1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			status, body := b.postSigned(t, tt.path, tt.contentType, tt.body, nil)
			if status != http.StatusBadRequest || body == "" {
				t.Fatalf("got %d %q, want 400 with a sentence", status, body)
			}
			if a := b.audit.all(); len(a) != 1 || a[0].Outcome != "invalid" {
				t.Errorf("audit = %+v, want one invalid", a)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	resp, err := b.srv.Client().Get(b.srv.URL + "/slack/commands")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET status = %d, want 405", resp.StatusCode)
	}
	if status, _ := b.postSigned(t, "/slack/nowhere", formType, "", nil); status != http.StatusNotFound {
		t.Errorf("unknown path status = %d, want 404", status)
	}
	// Mount-agnostic: only the last element counts.
	if status, _ := b.postSigned(t, "/hooks/chat/commands", formType, "command=%2Fec2&user_id=U1", nil); status != http.StatusOK {
		t.Errorf("command under another prefix status = %d, want 200", status)
	}
}

func TestURLVerification(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	body := `{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`
	status, got := b.postSigned(t, "/slack/events", "application/json", body, nil)
	if status != 200 {
		t.Fatalf("status = %d", status)
	}
	var resp struct{ Challenge string }
	if err := json.Unmarshal([]byte(got), &resp); err != nil || resp.Challenge != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" {
		t.Fatalf("response = %s (%v), want the challenge", got, err)
	}
	// Unsigned, the challenge is not echoed.
	if status, got := b.post(t, "/slack/events", "application/json", body, nil); status != 401 || strings.Contains(got, "3eZbrw") {
		t.Fatalf("unsigned challenge answered %d %s", status, got)
	}
}

const mentionEvent = `{"token":"x","team_id":"T1","api_app_id":"A1","type":"event_callback","event_id":"Ev08MFMKH6","event_time":1234567890,` +
	`"event":{"type":"app_mention","user":"U1","text":"<@U0LAN0Z89> status","ts":"1515449522.000016","channel":"C1","event_ts":"1515449522000016"}}`

func TestEventRetryIsDeduplicated(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if status, got := b.postSigned(t, "/slack/events", "application/json", mentionEvent, nil); status != 200 {
		t.Fatalf("first delivery: %d %s", status, got)
	}
	retry := map[string]string{headerRetryNum: "1", "X-Slack-Retry-Reason": "http_timeout"}
	if status, got := b.postSigned(t, "/slack/events", "application/json", mentionEvent, retry); status != 200 {
		t.Fatalf("retry: %d %s", status, got)
	}
	events := b.events.all()
	if len(events) != 1 {
		t.Fatalf("event handler called %d times, want 1", len(events))
	}
	ev := events[0]
	if ev.ID != "Ev08MFMKH6" || ev.Type != "app_mention" || ev.TeamID != "T1" || ev.Source != "slack" || ev.RetryNum != 0 {
		t.Errorf("event = %+v", ev)
	}
	mention, ok := ev.Inner.(*slackevents.AppMentionEvent)
	if !ok || mention.Channel != "C1" || mention.Text != "<@U0LAN0Z89> status" {
		t.Errorf("inner = %#v, want the decoded app_mention", ev.Inner)
	}
	if m := b.meter.all(); len(m) != 2 || m[0].outcome != "ok" || m[1].outcome != "duplicate" {
		t.Errorf("meter = %v, want ok then duplicate", m)
	}
}

// A retry of a delivery that was never recorded is processed, not dropped.
func TestEventNotRecordedIsRetried(t *testing.T) {
	t.Parallel()
	deliveries := &memDeliveries{err: errStoreDown}
	b := setup(t, func(c *HandlerConfig) { c.Deliveries = deliveries })
	if status, _ := b.postSigned(t, "/slack/events", "application/json", mentionEvent, nil); status != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500 so that Slack retries", status)
	}
	if n := len(b.events.all()); n != 0 {
		t.Fatalf("handler called %d times before the delivery was recorded", n)
	}
	deliveries.mu.Lock()
	deliveries.err = nil
	deliveries.mu.Unlock()
	if status, _ := b.postSigned(t, "/slack/events", "application/json", mentionEvent, map[string]string{headerRetryNum: "1"}); status != 200 {
		t.Fatalf("retry status = %d, want 200", status)
	}
	if ev := b.events.all(); len(ev) != 1 || ev[0].RetryNum != 1 {
		t.Fatalf("events = %+v, want the retry handled once", ev)
	}
}

func TestEventHandlerFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		deliveries     Deduper
		wantFirst      int
		wantHandled    int
		wantAuditFails int
	}{
		// The delivery is forgotten, so Slack's retry runs the handler again.
		{"deduper can forget", &forgettingDeliveries{}, 500, 2, 0},
		// Otherwise the failure is audited and the retry is a duplicate.
		{"deduper cannot forget", &memDeliveries{}, 200, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *HandlerConfig) { c.Deliveries = tt.deliveries })
			b.events.err = errStoreDown
			if status, _ := b.postSigned(t, "/slack/events", "application/json", mentionEvent, nil); status != tt.wantFirst {
				t.Fatalf("first status = %d, want %d", status, tt.wantFirst)
			}
			b.postSigned(t, "/slack/events", "application/json", mentionEvent, map[string]string{headerRetryNum: "1"})
			if n := len(b.events.all()); n != tt.wantHandled {
				t.Errorf("handler called %d times, want %d", n, tt.wantHandled)
			}
			if a := b.audit.all(); len(a) != tt.wantAuditFails {
				t.Errorf("audit = %+v, want %d failures", a, tt.wantAuditFails)
			}
		})
	}
}

func TestEventWithUnknownInnerType(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	body := `{"type":"event_callback","event_id":"Ev2","team_id":"T1","event":{"type":"brand_new_thing","x":1}}`
	if status, _ := b.postSigned(t, "/slack/events", "application/json", body, nil); status != 200 {
		t.Fatalf("status = %d, want 200", status)
	}
	ev := b.events.all()
	if len(ev) != 1 || ev[0].Type != "brand_new_thing" || ev[0].Inner != nil || !strings.Contains(string(ev[0].Raw), `"x":1`) {
		t.Fatalf("events = %+v, want the raw event with no decoded inner", ev)
	}
}

func TestOtherOuterEventsAreAcked(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	body := `{"token":"x","type":"app_rate_limited","team_id":"T1","minute_rate_limited":1518467820,"api_app_id":"A1"}`
	if status, _ := b.postSigned(t, "/slack/events", "application/json", body, nil); status != 200 {
		t.Fatalf("status = %d, want 200", status)
	}
	if n := len(b.events.all()); n != 0 {
		t.Fatalf("handler called %d times", n)
	}
}

const blockActionsPayload = `{"type":"block_actions","trigger_id":"13345224609.738474920.8088930838d88f008e0","team":{"id":"T1"},` +
	`"user":{"id":"U1","name":"alice"},"channel":{"id":"C1","name":"ops"},"response_url":"https://hooks.slack.com/actions/T1/1/x",` +
	`"actions":[{"action_id":"approve","block_id":"approval","type":"button","value":"run-7","action_ts":"1548426417.840180"}]}`

func TestInteraction(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	body := "payload=" + url.QueryEscape(blockActionsPayload)
	for range 2 {
		if status, got := b.postSigned(t, "/slack/interactions", formType, body, nil); status != 200 || got != "" {
			t.Fatalf("got %d %q, want an empty 200", status, got)
		}
	}
	got := b.interactions.all()
	if len(got) != 1 {
		t.Fatalf("interaction handler called %d times, want 1", len(got))
	}
	cb := got[0].Callback
	if got[0].Source != "slack" || cb.User.ID != "U1" || cb.Channel.ID != "C1" ||
		len(cb.ActionCallback.BlockActions) != 1 || cb.ActionCallback.BlockActions[0].Value != "run-7" {
		t.Errorf("interaction = %+v", got[0])
	}
}

func TestInteractionWithoutHandler(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *HandlerConfig) { c.Interactions = nil })
	body := "payload=" + url.QueryEscape(blockActionsPayload)
	if status, _ := b.postSigned(t, "/slack/interactions", formType, body, nil); status != 200 {
		t.Fatalf("status = %d, want 200", status)
	}
	a := b.audit.all()
	if len(a) != 1 || a[0].Outcome != "ignored" || a[0].Actor != "U1" || a[0].Subject != "slack block_actions approve" {
		t.Fatalf("audit = %+v", a)
	}
}

func TestNewHandlerValidates(t *testing.T) {
	t.Parallel()
	ok := HandlerConfig{SigningSecret: "s", Commands: &commandsFake{}, Deliveries: &memDeliveries{}}
	tests := []struct {
		name  string
		tweak func(*HandlerConfig)
		want  string
	}{
		{"no commands", func(c *HandlerConfig) { c.Commands = nil }, "Commands"},
		{"no deliveries", func(c *HandlerConfig) { c.Deliveries = nil }, "Deliveries"},
		{"no secret", func(c *HandlerConfig) { c.SigningSecret = "" }, "slack.signing_secret"},
		{"legacy without token", func(c *HandlerConfig) { c.SigningSecret, c.AllowLegacyToken = "", true }, "VerificationToken"},
	}
	if _, err := NewHandler(ok); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tt.tweak(&cfg)
			_, err := NewHandler(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

// With team_id and app_id configured, a correctly signed request from
// another workspace or app starts nothing and is audited; one from the
// configured workspace and app goes through.
func TestForeignWorkspaceOrApp(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *HandlerConfig) { c.TeamID, c.AppID = "T1", "A1" })
	for _, tt := range []struct{ team, app, want string }{
		{"T2", "A1", textForeign},
		{"T1", "A9", textForeign},
		{"T1", "A1", "Starting tools (i-0123)."},
	} {
		body := "command=%2Fec2&text=start+tools&user_id=U1&channel_id=C1&team_id=" + tt.team + "&api_app_id=" + tt.app + "&trigger_id=tr-" + tt.team + tt.app
		status, got := b.postSigned(t, "/slack/commands", formType, body, nil)
		if status != http.StatusOK || !strings.Contains(got, tt.want) {
			t.Errorf("team %s app %s: %d %s, want %q", tt.team, tt.app, status, got, tt.want)
		}
	}
	if n := len(b.commands.requests()); n != 1 {
		t.Errorf("%d commands reached the handler, want 1", n)
	}
	refused := 0
	for _, e := range b.audit.all() {
		if e.Outcome == "refused" && strings.Contains(e.Detail, "another Slack") {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("%d refusals audited, want 2: %+v", refused, b.audit.all())
	}
	// An interaction from another workspace reaches no handler.
	payload := strings.Replace(blockActionsPayload, `"team":{"id":"T1"}`, `"team":{"id":"T2"},"api_app_id":"A1"`, 1)
	if status, _ := b.postSigned(t, "/slack/interactions", formType, "payload="+url.QueryEscape(payload), nil); status != http.StatusOK || len(b.interactions.all()) != 0 {
		t.Errorf("a foreign interaction: status %d, %d handled", status, len(b.interactions.all()))
	}
}

// A response_url off slack.response_url_hosts is refused at the request,
// with a sentence and an audit line; the command and the button press
// reach no handler.
func TestResponseURLOffSlackIsRefused(t *testing.T) {
	t.Parallel()
	hosts, err := switchboard.NewAllowList("hooks.slack.com")
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, func(c *HandlerConfig) { c.ResponseURLs = hosts })
	for i, target := range []string{"http://169.254.169.254/latest/", "https://hooks.slack.com.evil.example/x", "http://hooks.slack.com/x", "https://hooks.slack.com/commands/T1/1/x"} {
		body := "command=%2Fec2&text=start+tools&user_id=U1&channel_id=C1&team_id=T1&trigger_id=tr-" + strconv.Itoa(i) + "&response_url=" + url.QueryEscape(target)
		status, got := b.postSigned(t, "/slack/commands", formType, body, nil)
		want := textBadResponseURL
		if strings.HasPrefix(target, "https://hooks.slack.com/") {
			want = "Starting tools (i-0123)."
		}
		if status != http.StatusOK || !strings.Contains(got, want) {
			t.Errorf("response_url %s: %d %s, want %q", target, status, got, want)
		}
	}
	if n := len(b.commands.requests()); n != 1 {
		t.Errorf("%d commands reached the handler, want 1", n)
	}
	payload := strings.Replace(blockActionsPayload, "https://hooks.slack.com/actions/T1/1/x", "http://10.0.0.1/x", 1)
	if status, _ := b.postSigned(t, "/slack/interactions", formType, "payload="+url.QueryEscape(payload), nil); status != http.StatusOK || len(b.interactions.all()) != 0 {
		t.Errorf("an interaction answering elsewhere: status %d, %d handled", status, len(b.interactions.all()))
	}
	refused := 0
	for _, e := range b.audit.all() {
		if e.Outcome == "refused" && strings.Contains(e.Detail, "its response_url points outside Slack") {
			refused++
		}
	}
	if refused != 4 {
		t.Errorf("%d refusals audited, want 4: %+v", refused, b.audit.all())
	}
}
