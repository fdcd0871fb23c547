package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

const secret = "8f742231b10e8888abcd99yyyzzz85a5"

// slackServer plays a Switchboard server: it verifies each slash command with
// slack-go's verifier (not with our own signing code), acks it, and posts to
// its response_url from another goroutine, as the real server's jobs do.
type slackServer struct {
	t       *testing.T
	answers int             // posts per response_url
	status  func(n int) int // ack status for command n; nil means 200

	mu       sync.Mutex
	triggers map[string]bool
	urls     map[string]bool
	channels map[string]bool
	wg       sync.WaitGroup
}

func newSlackServer(t *testing.T, answers int, status func(int) int) *httptest.Server {
	srv, _ := newSlackServerState(t, answers, status)
	return srv
}

func newSlackServerState(t *testing.T, answers int, status func(int) int) (*httptest.Server, *slackServer) {
	s := &slackServer{t: t, answers: answers, status: status, triggers: map[string]bool{}, urls: map[string]bool{}, channels: map[string]bool{}}
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		s.wg.Wait()
	})
	return srv, s
}

func (s *slackServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v, err := slack.NewSecretsVerifier(r.Header, secret)
	if err == nil {
		v.Write(body)
		err = v.Ensure()
	}
	if err != nil {
		http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	cmd, err := slack.SlashCommandParse(r)
	if err != nil || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		http.Error(w, "not a slash command", http.StatusBadRequest)
		return
	}
	if cmd.Command != "/ec2" || cmd.Text != "status" || cmd.UserID != "U1" || !strings.HasPrefix(cmd.ChannelID, "C1") {
		s.t.Errorf("command = %+v; want /ec2 status from U1 in C1", cmd)
	}
	ru, err := url.Parse(cmd.ResponseURL)
	if err != nil || !isLoopback(ru.Hostname()) {
		s.t.Errorf("response_url %q does not point at a loopback receiver", cmd.ResponseURL)
	}
	s.mu.Lock()
	if s.triggers[cmd.TriggerID] || s.urls[cmd.ResponseURL] {
		s.t.Errorf("trigger_id %s or response_url %s sent twice", cmd.TriggerID, cmd.ResponseURL)
	}
	s.triggers[cmd.TriggerID], s.urls[cmd.ResponseURL], s.channels[cmd.ChannelID] = true, true, true
	s.mu.Unlock()

	n, _ := strconv.Atoi(path.Base(ru.Path))
	if s.status != nil {
		if code := s.status(n); code != http.StatusOK {
			http.Error(w, "boom", code)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"response_type":"ephemeral","text":"Working on it"}`)

	s.wg.Go(func() {
		client := &http.Client{Timeout: 10 * time.Second}
		for range s.answers {
			resp, err := client.Post(cmd.ResponseURL, "application/json", strings.NewReader(`{"text":"i-0abc is running"}`))
			if err != nil {
				return // the receiver is gone once the tool has reported
			}
			resp.Body.Close()
		}
	})
}

func TestRun(t *testing.T) {
	t.Parallel()
	odd500 := func(n int) int {
		if n%2 == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	tests := []struct {
		name    string
		answers int
		status  func(int) int
		args    []string
		wantErr bool
		check   func(t *testing.T, r report)
	}{{
		name: "closed loop, answered once", answers: 1,
		args: []string{"-n", "40", "-concurrency", "4"},
		check: func(t *testing.T, r report) {
			want(t, "sent", r.Sent, 40)
			want(t, "acked", r.Acked, 40)
			want(t, "answered once", r.AnsweredOnce, 40)
			want(t, "ack samples", r.Ack.Count, 40)
			want(t, "end-to-end samples", r.EndToEnd.Count, 40)
			if r.Ack.P50 <= 0 || r.Ack.P50 > r.Ack.P99 || r.Ack.P99 > r.Ack.Max || r.Throughput <= 0 {
				t.Errorf("ack latency %+v, throughput %v: want 0 < p50 <= p99 <= max and throughput > 0", r.Ack, r.Throughput)
			}
			if r.AnswersPerS <= 0 {
				t.Errorf("answers/s %v: want more than 0", r.AnswersPerS)
			}
			if r.SampleAck != `{"response_type":"ephemeral","text":"Working on it"}` || r.SampleAns != `{"text":"i-0abc is running"}` {
				t.Errorf("samples: ack %q, answer %q", r.SampleAck, r.SampleAns)
			}
		},
	}, {
		name: "open loop, answered once", answers: 1,
		args: []string{"-rate", "400", "-n", "20"},
		check: func(t *testing.T, r report) {
			want(t, "mode", r.Mode, "open")
			want(t, "sent", r.Sent, 20)
			want(t, "answered once", r.AnsweredOnce, 20)
		},
	}, {
		name: "bounded by duration", answers: 1,
		args: []string{"-duration", "100ms", "-concurrency", "2"},
		check: func(t *testing.T, r report) {
			if r.Sent == 0 || r.AnsweredOnce != r.Sent {
				t.Errorf("sent %d, answered once %d; want some, all answered", r.Sent, r.AnsweredOnce)
			}
		},
	}, {
		name: "answered twice", answers: 2, wantErr: true,
		args: []string{"-n", "10", "-settle", "300ms"},
		check: func(t *testing.T, r report) {
			want(t, "answered once", r.AnsweredOnce, 0)
			want(t, "answered more than once", len(r.AnsweredTwice), 10)
			for n, count := range r.AnsweredTwice {
				want(t, fmt.Sprintf("answers to n=%d", n), count, 2)
			}
		},
	}, {
		name: "never answered", answers: 0, wantErr: true,
		args: []string{"-n", "5", "-answer-timeout", "100ms"},
		check: func(t *testing.T, r report) {
			want(t, "acked", r.Acked, 5)
			want(t, "never answered", fmt.Sprint(r.NeverAnswered), "[0 1 2 3 4]")
			want(t, "end-to-end samples", r.EndToEnd.Count, 0)
		},
	}, {
		name: "server errors", answers: 1, status: odd500, wantErr: true,
		args: []string{"-n", "10"},
		check: func(t *testing.T, r report) {
			want(t, "acked", r.Acked, 5)
			want(t, "HTTP 500 errors", r.Errors["HTTP 500"], 5)
			want(t, "answered once", r.AnsweredOnce, 5)
			want(t, "error sample", r.ErrorSamples["HTTP 500"], "boom")
		},
	}, {
		name: "wrong secret", answers: 1, wantErr: true,
		args: []string{"-n", "3", "-secret", "not-the-secret"},
		check: func(t *testing.T, r report) {
			want(t, "HTTP 401 errors", r.Errors["HTTP 401"], 3)
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newSlackServer(t, tt.answers, tt.status)
			args := append([]string{"slackload", "-url", srv.URL + "/slack/commands", "-user", "U1", "-channel", "C1",
				"-json", "-settle", "50ms"}, tt.args...)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, env(secret), &stdout, &stderr)
			if tt.wantErr != errors.Is(err, errFailed) {
				t.Fatalf("run = %v; want errFailed: %v\nstderr: %s", err, tt.wantErr, &stderr)
			}
			var r report
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatalf("decode the JSON report: %v\n%s", err, &stdout)
			}
			tt.check(t, r)
		})
	}
}

func TestRunChannels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{nil, "[C1]"},
		{[]string{"-channels", "3"}, "[C10 C11 C12]"},
	}
	for _, tt := range tests {
		srv, s := newSlackServerState(t, 1, nil)
		args := append([]string{"slackload", "-url", srv.URL, "-user", "U1", "-channel", "C1", "-n", "9", "-settle", "0s"}, tt.args...)
		if err := run(context.Background(), args, env(secret), io.Discard, io.Discard); err != nil {
			t.Fatalf("run %v: %v", tt.args, err)
		}
		s.mu.Lock()
		got := slices.Sorted(maps.Keys(s.channels))
		s.mu.Unlock()
		want(t, fmt.Sprintf("channels with %v", tt.args), fmt.Sprint(got), tt.want)
	}
}

func TestRunConnectionRefused(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var stdout bytes.Buffer
	err = run(context.Background(), []string{"slackload", "-url", "http://" + addr + "/slack/commands", "-n", "3", "-json"},
		env(secret), &stdout, io.Discard)
	if !errors.Is(err, errFailed) {
		t.Fatalf("run = %v, want errFailed", err)
	}
	var r report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	want(t, "refused", r.Errors["connection refused"], 3)
}

func TestRunTextReportAndOut(t *testing.T) {
	t.Parallel()
	srv := newSlackServer(t, 1, nil)
	out := filepath.Join(t.TempDir(), "report.txt")
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"slackload", "-url", srv.URL, "-user", "U1", "-channel", "C1",
		"-n", "5", "-settle", "10ms", "-out", out}, env(secret), &stdout, io.Discard)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	lines := map[string]string{}
	for _, line := range strings.Split(stdout.String(), "\n") {
		label, value, _ := strings.Cut(line, ":")
		lines[label] = strings.TrimSpace(value)
	}
	if !strings.HasPrefix(lines["ack latency"], "p50 ") || !strings.HasPrefix(lines["end to end"], "p50 ") ||
		!strings.HasPrefix(lines["exactly once"], "5 answered once, 0 never answered, 0 answered more than once") ||
		lines["result"] != "OK" {
		t.Errorf("report:\n%s", &stdout)
	}
	saved, err := os.ReadFile(out)
	if err != nil || string(saved) != stdout.String() {
		t.Errorf("-out file = %q, %v; want the printed report", saved, err)
	}
}

func TestRunStopsWhenCanceled(t *testing.T) {
	t.Parallel()
	srv := newSlackServer(t, 1, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout bytes.Buffer
	err := run(ctx, []string{"slackload", "-url", srv.URL, "-duration", "1h", "-json"}, env(secret), &stdout, io.Discard)
	if !errors.Is(err, errFailed) {
		t.Fatalf("run = %v, want errFailed for an interrupted run", err)
	}
	var r report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Interrupted {
		t.Error("report does not say the run was interrupted")
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     string
		wantErr string // substring; empty means valid
	}{
		{"valid", []string{"-url", "http://127.0.0.1:8080/slack/commands", "-n", "1"}, secret, ""},
		{"localhost", []string{"-url", "http://localhost:8080/x", "-duration", "1s"}, secret, ""},
		{"ipv6 loopback", []string{"-url", "http://[::1]:8080/x", "-n", "1"}, secret, ""},
		{"secret flag", []string{"-url", "http://127.0.0.1/x", "-n", "1", "-secret", "s"}, "", ""},
		{"remote allowed", []string{"-url", "https://bench.example.com/x", "-n", "1", "-allow-remote"}, secret, ""},
		{"no url", []string{"-n", "1"}, secret, "-url is required"},
		{"remote refused", []string{"-url", "https://bench.example.com/x", "-n", "1"}, secret, "-allow-remote"},
		{"remote ip refused", []string{"-url", "http://10.0.0.1/x", "-n", "1"}, secret, "not a loopback"},
		{"not http", []string{"-url", "ftp://127.0.0.1/x", "-n", "1"}, secret, "not an http"},
		{"no secret", []string{"-url", "http://127.0.0.1/x", "-n", "1"}, "", "SLACK_SIGNING_SECRET"},
		{"unbounded", []string{"-url", "http://127.0.0.1/x"}, secret, "-n or -duration"},
		{"negative rate", []string{"-url", "http://127.0.0.1/x", "-n", "1", "-rate", "-1"}, secret, "-rate"},
		{"no channels", []string{"-url", "http://127.0.0.1/x", "-n", "1", "-channels", "0"}, secret, "-channels"},
		{"no workers", []string{"-url", "http://127.0.0.1/x", "-n", "1", "-concurrency", "0"}, secret, "-concurrency"},
		{"bad command", []string{"-url", "http://127.0.0.1/x", "-n", "1", "-command", "ec2"}, secret, "must start with /"},
		{"stray argument", []string{"-url", "http://127.0.0.1/x", "-n", "1", "status"}, secret, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseFlags(append([]string{"slackload"}, tt.args...), env(tt.env), io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// TestSign checks our signer against Slack's published test vector.
func TestSign(t *testing.T) {
	t.Parallel()
	body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	got := sign(secret, "1531420618", []byte(body))
	want(t, "signature", got, "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")
}

func TestPercentiles(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		in   []time.Duration
		want latency
	}{
		{nil, latency{}},
		{[]time.Duration{3 * time.Millisecond}, latency{Count: 1, P50: 3, P90: 3, P99: 3, Max: 3}},
		{ds, latency{Count: 100, P50: 50, P90: 90, P99: 99, Max: 100}},
	}
	for _, tt := range tests {
		want(t, fmt.Sprintf("percentiles of %d", len(tt.in)), percentiles(tt.in), tt.want)
	}
}

func env(secret string) func(string) string {
	return func(key string) string {
		if key == "SLACK_SIGNING_SECRET" {
			return secret
		}
		return ""
	}
}

func want[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestHelpHidesSecret(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	_, err := parseFlags([]string{"slackload", "-h"}, env("topsecret"), &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseFlags(-h) = %v, want flag.ErrHelp", err)
	}
	if strings.Contains(stderr.String(), "topsecret") {
		t.Errorf("-h prints the signing secret from the environment:\n%s", &stderr)
	}
}
