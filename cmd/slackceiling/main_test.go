package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSecret = "8f742231b10e8888abcd99yyyzzz85a5"

// answers is a response_url receiver that keeps what it was sent.
type answers struct {
	mu     sync.Mutex
	bodies []string
}

func (a *answers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.bodies = append(a.bodies, string(b))
	a.mu.Unlock()
	io.WriteString(w, "ok")
}

func (a *answers) got() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.bodies...)
}

func TestCommand(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name        string
		secret      string    // what the request is signed with
		at          time.Time // its timestamp
		signature   string    // overrides the computed one when set
		responseURL string    // "" = the test's loopback receiver
		wantStatus  int
		wantAnswers int
	}{
		{name: "signed", secret: testSecret, at: now, wantStatus: 200, wantAnswers: 1},
		{name: "four minutes old", secret: testSecret, at: now.Add(-4 * time.Minute), wantStatus: 200, wantAnswers: 1},
		{name: "wrong secret", secret: "not-the-secret", at: now, wantStatus: 401},
		{name: "six minutes old", secret: testSecret, at: now.Add(-6 * time.Minute), wantStatus: 401},
		{name: "six minutes ahead", secret: testSecret, at: now.Add(6 * time.Minute), wantStatus: 401},
		{name: "no v0 prefix", secret: testSecret, at: now, signature: "deadbeef", wantStatus: 401},
		{name: "remote response_url", secret: testSecret, at: now, responseURL: "http://192.0.2.1/r/0", wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			recv := &answers{}
			rs := httptest.NewServer(recv)
			defer rs.Close()
			c := newCeiling(testSecret, log.New(io.Discard, "", 0))
			srv := httptest.NewServer(c.routes())
			defer srv.Close()

			responseURL := tt.responseURL
			if responseURL == "" {
				responseURL = rs.URL + "/r/0"
			}
			body := url.Values{"command": {"/ec2"}, "text": {"status tools"}, "response_url": {responseURL}}.Encode()
			ts := strconv.FormatInt(tt.at.Unix(), 10)
			sig := tt.signature
			if sig == "" {
				sig = "v0=" + hex.EncodeToString(sign(tt.secret, ts, []byte(body)))
			}
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/slack/commands", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Slack-Request-Timestamp", ts)
			req.Header.Set("X-Slack-Signature", sig)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			ack, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			c.wait()

			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", resp.StatusCode, ack, tt.wantStatus)
			}
			got := recv.got()
			if len(got) != tt.wantAnswers {
				t.Fatalf("answers = %q, want %d", got, tt.wantAnswers)
			}
			if resp.StatusCode != 200 {
				return
			}
			var m message
			if err := json.Unmarshal(ack, &m); err != nil || m.ResponseType != "ephemeral" || m.Text == "" {
				t.Errorf("ack = %s, want an ephemeral message", ack)
			}
			for _, a := range got {
				if err := json.Unmarshal([]byte(a), &m); err != nil || m.ResponseType != "in_channel" || !strings.Contains(m.Text, "is running") {
					t.Errorf("answer = %s, want an in_channel message saying the instance is running", a)
				}
			}
		})
	}
}

func TestRunRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		secret string
		want   string
	}{
		{name: "no secret", args: []string{"-addr", "127.0.0.1:0"}, want: "SLACK_SIGNING_SECRET"},
		{name: "remote address", args: []string{"-addr", "0.0.0.0:0"}, secret: testSecret, want: "loopback"},
		{name: "no port", args: []string{"-addr", "127.0.0.1"}, secret: testSecret, want: "-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := func(string) string { return tt.secret }
			err := run(context.Background(), append([]string{"slackceiling"}, tt.args...), getenv, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestRunStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	getenv := func(string) string { return testSecret }
	if err := run(ctx, []string{"slackceiling", "-addr", "127.0.0.1:0"}, getenv, io.Discard); err != nil {
		t.Fatalf("run with a done context = %v, want a clean stop", err)
	}
}
