package slack

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
)

// responseURLServer impersonates a Slack response_url: it answers each post
// with status and header, and records the bodies.
type responseURLServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []responseURLBody
}

func newResponseURLServer(t *testing.T, status int, header map[string]string, reply string) *responseURLServer {
	t.Helper()
	s := &responseURLServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b responseURLBody
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&b) != nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.bodies = append(s.bodies, b)
		s.mu.Unlock()
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		io.WriteString(w, reply)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestMessengerResponseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		status         int
		header         map[string]string
		reply          string
		wantCode       string
		wantRetryAfter time.Duration
		wantInMessage  string
	}{
		{"ok", 200, nil, "ok", "", 0, ""},
		{"server error is retried", 500, nil, "", switchboard.EUNAVAILABLE, 0, "retried"},
		{"bad gateway is retried", 502, nil, "", switchboard.EUNAVAILABLE, 0, "retried"},
		{"throttled", 429, map[string]string{"Retry-After": "3"}, "", switchboard.ETHROTTLED, 3 * time.Second, "slow down"},
		{"throttled without Retry-After", 429, nil, "", switchboard.ETHROTTLED, 0, "slow down"},
		{"expired", 404, nil, "expired_url", switchboard.EINVALID, 0, "response_url (HTTP 404 expired_url)"},
		{"gone", 410, nil, "", switchboard.EINVALID, 0, "refused the response_url"},
		{"too many posts", 400, nil, "used_url", switchboard.EINVALID, 0, "used_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newResponseURLServer(t, tt.status, tt.header, tt.reply)
			m := &Messenger{HTTPClient: srv.Client()}
			_, err := m.Post(context.Background(), switchboard.Message{
				ChannelID:   "C1",
				ResponseURL: srv.URL + "/commands/T1/1/secret",
				Text:        "tools (i-0123) is now running at 107.20.248.29",
			})
			if got := switchboard.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.wantCode)
			}
			srv.mu.Lock()
			bodies := srv.bodies
			srv.mu.Unlock()
			want := responseURLBody{ResponseType: "in_channel", ReplaceOriginal: false, Text: "tools (i-0123) is now running at 107.20.248.29"}
			if len(bodies) != 1 || !reflect.DeepEqual(bodies[0], want) {
				t.Errorf("posted %+v, want %+v", bodies, want)
			}
			if err == nil {
				return
			}
			var e *switchboard.Error
			errors.As(err, &e)
			if e.RetryAfter != tt.wantRetryAfter {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.wantRetryAfter)
			}
			if !strings.Contains(e.Message, tt.wantInMessage) {
				t.Errorf("message %q does not contain %q", e.Message, tt.wantInMessage)
			}
			if strings.Contains(e.Message, "secret") {
				t.Errorf("message %q leaks the response_url", e.Message)
			}
		})
	}
}

func TestMessengerResponseURLUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there any more
	m := &Messenger{}
	_, err := m.Post(context.Background(), switchboard.Message{ChannelID: "C1", ResponseURL: addr + "/commands/T1/1/secret", Text: "hi"})
	if got := switchboard.ErrorCode(err); got != switchboard.EUNAVAILABLE {
		t.Fatalf("code = %q (%v), want unavailable", got, err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q leaks the response_url", err)
	}
}

// webAPI impersonates Slack's Web API chat.postMessage.
type webAPI struct {
	*httptest.Server
	mu    sync.Mutex
	calls []postMessageCall
}

type postMessageCall struct {
	token, channel, text string
}

func newWebAPI(t *testing.T, answer func(w http.ResponseWriter)) *webAPI {
	t.Helper()
	s := &webAPI{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/chat.postMessage" {
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		// slack-go sends the token as a form field on chat.postMessage;
		// Slack also takes it as a bearer token. Either will do.
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			token = r.PostForm.Get("token")
		}
		s.calls = append(s.calls, postMessageCall{token, r.PostForm.Get("channel"), r.PostForm.Get("text")})
		s.mu.Unlock()
		answer(w)
	}))
	t.Cleanup(s.Close)
	return s
}

func slackOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok":true,"channel":"C1","ts":"1503435956.000247"}`)
}

func TestMessengerPostMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		answer         func(w http.ResponseWriter)
		wantCode       string
		wantRetryAfter time.Duration
	}{
		{"ok", slackOK, "", 0},
		{"rate limited", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		}, switchboard.ETHROTTLED, 7 * time.Second},
		{"server error", func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }, switchboard.EUNAVAILABLE, 0},
		{"not in channel", func(w http.ResponseWriter) {
			io.WriteString(w, `{"ok":false,"error":"not_in_channel"}`)
		}, switchboard.EINVALID, 0},
		{"bad token", func(w http.ResponseWriter) {
			io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
		}, switchboard.EUNAUTHORIZED, 0},
		{"slack internal error", func(w http.ResponseWriter) {
			io.WriteString(w, `{"ok":false,"error":"internal_error"}`)
		}, switchboard.EUNAVAILABLE, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newWebAPI(t, tt.answer)
			m := &Messenger{BotToken: "xoxb-test-token", APIURL: api.URL + "/api", HTTPClient: api.Client()}
			_, err := m.Post(context.Background(), switchboard.Message{ChannelID: "C0123", Text: "tools is <https://x|up>"})
			if got := switchboard.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.wantCode)
			}
			api.mu.Lock()
			calls := api.calls
			api.mu.Unlock()
			want := postMessageCall{"xoxb-test-token", "C0123", "tools is <https://x|up>"}
			if len(calls) != 1 || calls[0] != want {
				t.Errorf("calls = %+v, want %+v", calls, want)
			}
			if err != nil {
				var e *switchboard.Error
				errors.As(err, &e)
				if e.RetryAfter != tt.wantRetryAfter {
					t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.wantRetryAfter)
				}
				if strings.Contains(e.Message, "xoxb-test-token") {
					t.Errorf("message %q leaks the token", e.Message)
				}
			}
		})
	}
}

func TestMessengerWithoutBotToken(t *testing.T) {
	t.Parallel()
	m := &Messenger{APIURL: "http://127.0.0.1:1/api/"}
	_, err := m.Post(context.Background(), switchboard.Message{ChannelID: "C1", Text: "hi"})
	var e *switchboard.Error
	if !errors.As(err, &e) || e.Code != switchboard.EINVALID || !strings.Contains(e.Message, "slack.bot_token") {
		t.Fatalf("err = %v, want EINVALID naming slack.bot_token", err)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"0", 0},
		{"-4", 0},
		{"soon", 0},
		{"99999999999999999", time.Hour},
		{"86400", time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		h.Set("Retry-After", tt.value)
		if got := retryAfter(h, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
}

// Slack's delivery rules, kept by the Messenger: the response_url while it
// has posts left and has not expired, chat.postMessage after, and when
// Slack refuses the response_url; chat.postMessage paced per channel.
func TestMessengerDeliver(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	fiveVias := []string{"response_url", "response_url", "chat.postMessage", "response_url", "response_url", "response_url"}
	tests := []struct {
		name     string
		status   int // the response_url's answer
		earlier  []string
		asked    time.Duration // how long ago the request came in
		wantVia  string
		wantPost int // chat.postMessage calls
	}{
		{"fresh request", 200, nil, time.Minute, "response_url", 0},
		{"four posts used", 200, fiveVias[:5], time.Minute, "response_url", 0},
		{"five posts used", 200, fiveVias, time.Minute, "chat.postMessage", 1},
		{"expired", 200, nil, 31 * time.Minute, "chat.postMessage", 1},
		{"refused by Slack", 404, nil, time.Minute, "chat.postMessage", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hook := newResponseURLServer(t, tt.status, nil, "expired_url")
			api := newWebAPI(t, slackOK)
			m := &Messenger{BotToken: "xoxb-test-token", APIURL: api.URL + "/api", HTTPClient: api.Client(), nowFor: func() time.Time { return now }}
			d, err := m.Deliver(context.Background(), switchboard.Message{ChannelID: "C1", ResponseURL: hook.URL, Text: "hi",
				RequestedAt: now.Add(-tt.asked)}, tt.earlier)
			if err != nil {
				t.Fatal(err)
			}
			api.mu.Lock()
			posts := len(api.calls)
			api.mu.Unlock()
			if d.Via != tt.wantVia || posts != tt.wantPost {
				t.Errorf("via %q with %d chat.postMessage calls, want %q with %d", d.Via, posts, tt.wantVia, tt.wantPost)
			}
			if d.Via == "chat.postMessage" && d.Ref != "1503435956.000247" {
				t.Errorf("Ref = %q, want the message's ts", d.Ref)
			}
		})
	}

	t.Run("paced per channel", func(t *testing.T) {
		t.Parallel()
		api := newWebAPI(t, slackOK)
		m := &Messenger{BotToken: "xoxb-test-token", APIURL: api.URL + "/api", HTTPClient: api.Client(), nowFor: func() time.Time { return now }}
		deliver := func(channel string) error {
			_, err := m.Deliver(context.Background(), switchboard.Message{ChannelID: channel, Text: "hi"}, nil)
			return err
		}
		for i := range 3 { // a burst of three
			if err := deliver("C1"); err != nil {
				t.Fatalf("post %d: %v", i+1, err)
			}
		}
		err := deliver("C1")
		var e *switchboard.Error
		if !errors.As(err, &e) || e.Code != switchboard.ETHROTTLED || e.RetryAfter <= 0 || e.RetryAfter > time.Second {
			t.Fatalf("fourth post at once: %v, want ETHROTTLED with a wait of at most 1s", err)
		}
		if err := deliver("C2"); err != nil {
			t.Errorf("another channel waits for C1: %v", err)
		}
		api.mu.Lock()
		defer api.mu.Unlock()
		if len(api.calls) != 4 {
			t.Errorf("%d posts reached Slack, want 4 (the paced one waits)", len(api.calls))
		}
	})
}

// A channel target webhook:NAME posts to the incoming webhook of that name,
// paced like a channel; Slack's refusal says to check the webhook.
func TestMessengerWebhook(t *testing.T) {
	t.Parallel()
	hook := newResponseURLServer(t, 200, nil, "ok")
	gone := newResponseURLServer(t, 404, nil, "no_service")
	m := &Messenger{Webhooks: map[string]string{"deploys": hook.URL, "old": gone.URL}}
	d, err := m.Deliver(context.Background(), switchboard.Message{ChannelID: "webhook:deploys", Text: "Tore down 3 environments."}, nil)
	if err != nil || d.Via != "webhook" {
		t.Fatalf("Deliver = %+v, %v", d, err)
	}
	hook.mu.Lock()
	if len(hook.bodies) != 1 || hook.bodies[0].Text != "Tore down 3 environments." {
		t.Errorf("webhook got %+v", hook.bodies)
	}
	hook.mu.Unlock()
	_, err = m.Deliver(context.Background(), switchboard.Message{ChannelID: "webhook:old", Text: "x"}, nil)
	if switchboard.ErrorCode(err) != switchboard.EINVALID || !strings.Contains(err.Error(), "no_service") || strings.Contains(err.Error(), gone.URL) {
		t.Errorf("removed webhook: %v, want EINVALID with Slack's reason and without the URL", err)
	}
	if _, err := m.Deliver(context.Background(), switchboard.Message{ChannelID: "webhook:nope", Text: "x"}, nil); switchboard.ErrorCode(err) != switchboard.EINVALID {
		t.Errorf("unknown webhook: %v", err)
	}
}

// The messenger never posts to a response_url off its hosts, whatever the
// message says; and follows no redirect from Slack's.
func TestMessengerResponseURLHosts(t *testing.T) {
	t.Parallel()
	srv := newResponseURLServer(t, 200, nil, "ok")
	hosts, _ := switchboard.NewAllowList("hooks.slack.com")
	m := &Messenger{HTTPClient: srv.Client(), ResponseURLs: hosts}
	_, err := m.Post(context.Background(), switchboard.Message{ChannelID: "C1", ResponseURL: srv.URL + "/commands/T1/1", Text: "hi"})
	if switchboard.ErrorCode(err) != switchboard.EINVALID || !strings.Contains(switchboard.ErrorMessage(err), "not on Slack's hosts") {
		t.Errorf("err = %v", err)
	}
	srv.mu.Lock()
	if len(srv.bodies) != 0 {
		t.Errorf("posted %+v to a response_url off Slack's hosts", srv.bodies)
	}
	srv.mu.Unlock()

	var followed bool
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed = true }))
	defer target.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	_, err = (&Messenger{}).Post(context.Background(), switchboard.Message{ChannelID: "C1", ResponseURL: redirect.URL + "/commands/T1/1", Text: "hi"})
	if followed || switchboard.ErrorCode(err) != switchboard.EINVALID {
		t.Errorf("a redirect: followed %v, err %v", followed, err)
	}
}
