package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/testenv"
	"github.com/switchboardhq/switchboard/web"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// now is the fixed clock of these tests.
var now = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

// fakeStore keeps what the server writes in memory. The real SQL store is
// exercised by the end-to-end test.
type fakeStore struct {
	pingErr   error
	appendErr error

	mu        sync.Mutex
	lines     []switchboard.TranscriptLine
	runs      []switchboard.Run
	audit     []switchboard.AuditEvent
	runsLimit int
	auditArgs switchboard.AuditQuery
	// onAppend is called after a line is stored, outside the lock.
	onAppend func(switchboard.TranscriptLine)
}

func (s *fakeStore) Ping(context.Context) error { return s.pingErr }

func (s *fakeStore) ListRuns(_ context.Context, limit int) ([]switchboard.Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runsLimit = limit
	return append([]switchboard.Run(nil), s.runs...), nil
}

func (s *fakeStore) ListAudit(_ context.Context, q switchboard.AuditQuery) ([]switchboard.AuditEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auditArgs = q
	return append([]switchboard.AuditEvent(nil), s.audit...), nil
}

func (s *fakeStore) Transcript(_ context.Context, channel string, afterID int64, limit int) ([]switchboard.TranscriptLine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []switchboard.TranscriptLine
	for _, l := range s.lines {
		if l.ChannelID == channel && l.ID > afterID && len(out) < limit {
			out = append(out, l)
		}
	}
	return out, nil
}

func (s *fakeStore) AppendTranscript(_ context.Context, line switchboard.TranscriptLine) (int64, error) {
	if s.appendErr != nil {
		return 0, s.appendErr
	}
	s.mu.Lock()
	line.ID = int64(len(s.lines) + 1)
	s.lines = append(s.lines, line)
	hook := s.onAppend
	s.mu.Unlock()
	if hook != nil {
		hook(line)
	}
	return line.ID, nil
}

func (s *fakeStore) allLines() []switchboard.TranscriptLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]switchboard.TranscriptLine(nil), s.lines...)
}

// fakeCommands is a CommandHandler that records what it got and answers with
// handleFunc, or with a plain ack.
type fakeCommands struct {
	handleFunc func(switchboard.Request) (switchboard.Ack, error)

	mu   sync.Mutex
	reqs []switchboard.Request
}

func (c *fakeCommands) HandleCommand(_ context.Context, req switchboard.Request) (switchboard.Ack, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, req)
	c.mu.Unlock()
	if c.handleFunc == nil {
		return switchboard.Ack{Text: "On it.", RunID: "run-1"}, nil
	}
	return c.handleFunc(req)
}

func (c *fakeCommands) requests() []switchboard.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]switchboard.Request(nil), c.reqs...)
}

type fakeAuditor struct {
	mu     sync.Mutex
	events []switchboard.AuditEvent
}

func (a *fakeAuditor) Audit(_ context.Context, e switchboard.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
	return nil
}

type fakeMeter struct {
	mu       sync.Mutex
	outcomes []string
}

func (m *fakeMeter) RequestServed(source, outcome string, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.outcomes = append(m.outcomes, source+":"+outcome)
}
func (m *fakeMeter) MessageSent(string) {}

func (m *fakeMeter) all() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.outcomes...)
}

// testBundle is a running server and the fakes behind it.
type testBundle struct {
	srv      *httptest.Server
	client   *http.Client // keeps cookies, does not follow redirects
	store    *fakeStore
	commands *fakeCommands
	auditor  *fakeAuditor
	meter    *fakeMeter
}

// localToken is the generated login token of the servers setup starts.
const localToken = "local-token-0123456789abcdef"

// setup starts a server on 127.0.0.1. cfg.Addr decides whether it behaves as
// a loopback or a public server; it defaults to loopback, and then the
// bundle's client is logged in with the generated token, as a browser that
// opened the start banner's address.
func setup(t *testing.T, cfg web.Config) *testBundle {
	t.Helper()
	b := &testBundle{store: &fakeStore{}, commands: &fakeCommands{}, auditor: &fakeAuditor{}, meter: &fakeMeter{}}
	login := cfg.Addr == "" && cfg.AdminToken == "" && cfg.LocalToken == "" && cfg.Operators == nil
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.LocalToken == "" {
		cfg.LocalToken = localToken
	}
	if cfg.Store == nil {
		cfg.Store = b.store
	}
	if cfg.Commands == nil {
		cfg.Commands = b.commands
	}
	cfg.Auditor = b.auditor
	cfg.Meter = b.meter
	cfg.NowFunc = func() time.Time { return now }
	if cfg.Users == nil {
		cfg.Users = []string{"U0DEV1", "U0OPS1"}
		cfg.Channels = []string{"C0OPS", "C0DEV"}
		cfg.CommandNames = []string{"/ec2", "/ecs"}
	}
	b.srv = httptest.NewServer(web.NewServer(cfg).Handler())
	t.Cleanup(b.srv.Close)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b.client = &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if login {
		b.login(t, localToken)
	}
	return b
}

// login opens the console's address with a token, as the start banner
// prints it, and fails unless that logged the client in.
func (b *testBundle) login(t *testing.T, token string) {
	t.Helper()
	resp, body := b.do(t, "GET", "/?token="+url.QueryEscape(token), nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" || len(resp.Cookies()) != 1 {
		t.Fatalf("GET /?token= = %d to %q with cookies %v, want 303 to / with a session: %s", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies(), body)
	}
}

// do sends a request and returns the response with its body read.
func (b *testBundle) do(t *testing.T, method, path string, header http.Header, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if h := header.Get("Host"); h != "" {
		req.Host = h
	}
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(data)
}

var csrfMeta = regexp.MustCompile(`<meta name="sb-csrf" content="([0-9a-f]+)">`)

// csrf loads the console page and returns the token it carries, as the
// page's script does.
func (b *testBundle) csrf(t *testing.T) string {
	t.Helper()
	resp, body := b.do(t, "GET", "/", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d, want 200: %s", resp.StatusCode, body)
	}
	m := csrfMeta.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("console page has no sb-csrf meta tag:\n%s", body)
	}
	return m[1]
}

// api calls the console API with the token.
func (b *testBundle) api(t *testing.T, method, path, token string, body any) (*http.Response, string) {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("X-Switchboard-CSRF", token)
	}
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
		h.Set("Content-Type", "application/json")
	}
	return b.do(t, method, path, h, r)
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "switchboard_up 1\n") })
	b := setup(t, web.Config{Metrics: metrics})

	tests := []struct {
		method, path string
		want         int
		contains     string
	}{
		{"GET", "/healthz", 200, "ok"},
		{"POST", "/healthz", 405, ""},
		{"GET", "/readyz", 200, "ready"},
		{"PUT", "/readyz", 405, ""},
		{"GET", "/metrics", 200, "switchboard_up"},
		{"POST", "/metrics", 405, ""},
		{"POST", "/slack/commands", 404, "Slack is not configured: add a slack: section with signing_secret"},
		{"POST", "/slack/interactions", 404, "Slack is not configured"},
		{"POST", "/slack/events", 404, "Slack is not configured"},
		{"GET", "/slack/commands", 405, ""},
		{"GET", "/slack/events", 405, ""},
		{"GET", "/", 200, `id="transcript"`},
		{"POST", "/", 405, ""},
		{"GET", "/console/login", 303, ""}, // loopback: nothing to log in to
		{"GET", "/console/logout", 405, ""},
		{"DELETE", "/console/login", 405, ""},
		{"GET", "/static/app.js", 200, "X-Switchboard-CSRF"},
		{"GET", "/static/style.css", 200, ".transcript"},
		{"POST", "/static/app.js", 405, ""},
		{"GET", "/static/", 404, ""},
		{"GET", "/static/index.html", 404, ""},
		{"GET", "/console/api/command", 405, ""},
		{"POST", "/console/api/transcript", 405, ""},
		{"POST", "/console/api/runs", 405, ""},
		{"DELETE", "/console/api/audit", 405, ""},
		{"GET", "/nope", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			resp, body := b.do(t, tt.method, tt.path, nil, nil)
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d; body: %s", resp.StatusCode, tt.want, body)
			}
			if !strings.Contains(body, tt.contains) {
				t.Errorf("body %q does not contain %q", body, tt.contains)
			}
			if tt.want == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}
}

func TestSlackRoutesCallTheSlackHandlers(t *testing.T) {
	t.Parallel()
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	}
	// A public address without an admin token: Slack must still be served,
	// since its handlers verify signatures themselves.
	b := setup(t, web.Config{Addr: ":8080", Slack: web.SlackHandlers{
		Commands: named("commands"), Interactions: named("interactions"), Events: named("events"),
	}})
	for _, name := range []string{"commands", "interactions", "events"} {
		resp, body := b.do(t, "POST", "/slack/"+name, nil, strings.NewReader("x=1"))
		if resp.StatusCode != 200 || body != name {
			t.Errorf("POST /slack/%s = %d %q, want 200 %q", name, resp.StatusCode, body, name)
		}
	}
}

func TestReadyzReportsTheStore(t *testing.T) {
	t.Parallel()
	store := &fakeStore{pingErr: errors.New("database is locked")}
	b := setup(t, web.Config{Store: store})
	resp, body := b.do(t, "GET", "/readyz", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", resp.StatusCode)
	}
	if !strings.Contains(body, "database is locked") {
		t.Errorf("body %q does not say why", body)
	}
	if resp, _ := b.do(t, "GET", "/healthz", nil, nil); resp.StatusCode != 200 {
		t.Errorf("/healthz = %d while the store is down, want 200: the process is up", resp.StatusCode)
	}
}

// fakeSources is the trigger sources' health as serve would report it.
type fakeSources map[string]web.SourceHealth

func (s fakeSources) SourceHealth() map[string]web.SourceHealth { return s }

type readyBody struct {
	Status  string                      `json:"status"`
	Error   string                      `json:"error"`
	Sources map[string]web.SourceHealth `json:"sources"`
}

// A failing trigger source leaves the replica ready (a load balancer must
// not pull it for a mailbox that is down) but says so; a store that does
// not answer makes it not ready.
func TestReadyzReportsTheSources(t *testing.T) {
	t.Parallel()
	since := now.Add(-time.Minute)
	failing := fakeSources{
		"mailbox:ops":       {State: web.SourceFailing, Since: since, Error: "mailbox ops: connect to 127.0.0.1:993: connection refused", Failures: 3, NextTry: now.Add(4 * time.Second)},
		"queue:ec2-events":  {State: web.SourceOK, OK: true, Since: since},
		"mailbox:notices-2": {State: web.SourceStandby, OK: true, Since: since},
	}
	tests := []struct {
		name       string
		sources    web.Sources
		pingErr    error
		wantCode   int
		wantStatus string
	}{
		{"no sources", nil, nil, 200, "ready"},
		{"all well", fakeSources{"queue:ec2-events": {State: web.SourceOK, OK: true, Since: since}, "mailbox:ops": {State: web.SourceStarting, OK: true, Since: since}}, nil, 200, "ready"},
		{"a mailbox down", failing, nil, 200, "degraded"},
		{"the store down", failing, errors.New("database is locked"), 503, "not_ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, web.Config{Store: &fakeStore{pingErr: tt.pingErr}, Sources: tt.sources})
			for _, path := range []string{"/readyz", "/console/api/status"} {
				resp, body := b.api(t, "GET", path, b.csrf(t), nil)
				wantCode := tt.wantCode
				if path != "/readyz" {
					wantCode = 200 // the console shows the detail either way
				}
				if resp.StatusCode != wantCode || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
					t.Fatalf("GET %s = %d %s, want %d JSON: %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), wantCode, body)
				}
				var got readyBody
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatalf("GET %s: %v in %s", path, err, body)
				}
				if got.Status != tt.wantStatus {
					t.Errorf("GET %s: status %q, want %q: %s", path, got.Status, tt.wantStatus, body)
				}
				if tt.pingErr != nil && got.Error != "store: database is locked" {
					t.Errorf("GET %s: error %q, want the store's", path, got.Error)
				}
				if tt.sources == nil && strings.Contains(body, "sources") {
					t.Errorf("GET %s without sources says %s", path, body)
				}
				if tt.sources != nil && len(got.Sources) != len(tt.sources.SourceHealth()) {
					t.Errorf("GET %s: sources %v, want %v", path, got.Sources, tt.sources.SourceHealth())
				}
			}
		})
	}

	b := setup(t, web.Config{Sources: failing})
	_, body := b.do(t, "GET", "/readyz", nil, nil)
	for _, want := range []string{
		`"mailbox:ops":{"state":"failing","ok":false,"since":"2024-05-01T09:59:00Z","error":"mailbox ops: connect to 127.0.0.1:993: connection refused","failures":3,"next_try":"2024-05-01T10:00:04Z"}`,
		`"queue:ec2-events":{"state":"ok","ok":true,"since":"2024-05-01T09:59:00Z"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz does not say %s:\n%s", want, body)
		}
	}
}

func TestConsolePage(t *testing.T) {
	t.Parallel()
	b := setup(t, web.Config{})
	resp, body := b.do(t, "GET", "/", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	headers := map[string]string{
		"Content-Security-Policy": "default-src 'self'",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
	}
	for name, want := range headers {
		if got := resp.Header.Get(name); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want it to contain %q", name, got, want)
		}
	}
	for _, want := range []string{
		`id="user"`, `id="channel"`, `id="input"`, `id="send"`, `id="transcript"`, `id="runs"`, `id="audit"`,
		`<option value="U0OPS1">`, `<option value="C0OPS">`, `data-cmd="/ec2"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if !strings.Contains(body, `action="/console/logout"`) {
		t.Error("a logged-in console shows no log-out button")
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Error("the page refers to an external resource")
	}
}

func TestConsoleAPIGuards(t *testing.T) {
	t.Parallel()
	b := setup(t, web.Config{})
	token := b.csrf(t)
	host := strings.TrimPrefix(b.srv.URL, "http://")

	tests := []struct {
		name   string
		header map[string]string
		host   string
		want   int
	}{
		{"token and no Origin", map[string]string{"X-Switchboard-CSRF": token}, "", 200},
		{"token and same Origin", map[string]string{"X-Switchboard-CSRF": token, "Origin": b.srv.URL, "Sec-Fetch-Site": "same-origin"}, "", 200},
		{"no token", map[string]string{}, "", 403},
		{"wrong token", map[string]string{"X-Switchboard-CSRF": strings.Repeat("0", len(token))}, "", 403},
		{"token of another length", map[string]string{"X-Switchboard-CSRF": token[:10]}, "", 403},
		{"another Origin", map[string]string{"X-Switchboard-CSRF": token, "Origin": "http://evil.example"}, "", 403},
		{"another port", map[string]string{"X-Switchboard-CSRF": token, "Origin": "http://127.0.0.1:1"}, "", 403},
		{"Origin null", map[string]string{"X-Switchboard-CSRF": token, "Origin": "null"}, "", 403},
		{"cross-site fetch", map[string]string{"X-Switchboard-CSRF": token, "Sec-Fetch-Site": "cross-site"}, "", 403},
		// A loopback server reached by another name (a DNS-rebound host)
		// gets no session cookie from a browser: TestWhenTheConsoleAsksForALogin.
		{"another Origin on a rebound Host", map[string]string{"X-Switchboard-CSRF": token, "Origin": "http://evil.example:" + strings.Split(host, ":")[1]}, "", 403},
	}
	for _, tt := range tests {
		for _, call := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/console/api/runs", nil},
			{"GET", "/console/api/audit", nil},
			{"GET", "/console/api/status", nil},
			{"GET", "/console/api/transcript?channel=C0OPS", nil},
			{"POST", "/console/api/command", map[string]string{"user": "U0OPS1", "channel": "C0OPS", "text": "/ec2 status"}},
		} {
			t.Run(tt.name+"/"+call.method+" "+call.path, func(t *testing.T) {
				var body io.Reader
				if call.body != nil {
					data, _ := json.Marshal(call.body)
					body = bytes.NewReader(data)
				}
				req, err := http.NewRequest(call.method, b.srv.URL+call.path, body)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range tt.header {
					req.Header.Set(k, v)
				}
				if tt.host != "" {
					req.Host = tt.host
				}
				resp, err := b.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				data, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != tt.want {
					t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.want, data)
				}
				if tt.want != 200 {
					var e struct{ Error, Code string }
					if err := json.Unmarshal(data, &e); err != nil || e.Error == "" || e.Code != switchboard.EFORBIDDEN {
						t.Errorf("refusal body = %s, want a JSON error with code %s", data, switchboard.EFORBIDDEN)
					}
				}
			})
		}
	}
	// Nothing refused reached the command handler.
	if n := len(b.commands.requests()); n != 2 {
		t.Errorf("command handler called %d times, want 2 (the two allowed cases)", n)
	}
}

// Every request without a session is sent to the login, on loopback too:
// any local user can reach a loopback port. The console is off only where
// no token can log in: a public address without an admin token (the
// generated token counts on loopback only).
func TestWhenTheConsoleAsksForALogin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr, adminToken string
		header           http.Header
		want             int // GET /: 303 to the login, 403 off
	}{
		{"127.0.0.1:8080", "", nil, 303},
		{"127.0.0.2:8080", "", nil, 303},
		{"localhost:8080", "", nil, 303},
		{"[::1]:8080", "", nil, 303},
		{"127.0.0.1:8080", "s3cret", nil, 303},
		{"127.0.0.1:8080", "", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, 303},
		{"127.0.0.1:8080", "", http.Header{"Forwarded": {"for=203.0.113.9"}}, 303},
		{"127.0.0.1:8080", "", http.Header{"Host": {"evil.example"}}, 303},
		{":8080", "", nil, 403},
		{"0.0.0.0:8080", "", nil, 403},
		{"[::]:8080", "", nil, 403},
		{"10.0.0.5:8080", "", nil, 403},
		{":8080", "s3cret", nil, 303},
		{"switchboard.example.com:443", "s3cret", nil, 303},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s token=%q %v", tt.addr, tt.adminToken, tt.header), func(t *testing.T) {
			t.Parallel()
			b := setup(t, web.Config{Addr: tt.addr, AdminToken: tt.adminToken})
			resp, body := b.do(t, "GET", "/", tt.header, nil)
			if resp.StatusCode != tt.want {
				t.Errorf("GET / = %d (Location %q), want %d: %s", resp.StatusCode, resp.Header.Get("Location"), tt.want, body)
			}
		})
	}
}

func TestLoginOffLoopback(t *testing.T) {
	t.Parallel()
	b := setup(t, web.Config{Addr: "0.0.0.0:8080", AdminToken: "s3cret"})

	resp, _ := b.do(t, "GET", "/", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
		t.Fatalf("GET / = %d to %q, want 303 to /console/login", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := b.do(t, "GET", "/console/login", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `name="token"`) {
		t.Fatalf("GET /console/login = %d, want the login form: %s", resp.StatusCode, body)
	}
	if resp, _ := b.api(t, "GET", "/console/api/runs", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API without a session = %d, want 401", resp.StatusCode)
	}

	login := func(token string) (*http.Response, string) {
		form := url.Values{"token": {token}}
		return b.do(t, "POST", "/console/login", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, strings.NewReader(form.Encode()))
	}
	resp, body = login("wrong")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not right") {
		t.Fatalf("wrong token = %d, want 401 with a sentence: %s", resp.StatusCode, body)
	}
	if len(resp.Cookies()) != 0 {
		t.Error("a wrong token got a cookie")
	}
	b.auditor.mu.Lock()
	events := append([]switchboard.AuditEvent(nil), b.auditor.events...)
	b.auditor.mu.Unlock()
	if len(events) != 1 || events[0].Subject != "console login" || events[0].Outcome != "refused" || !strings.HasPrefix(events[0].Actor, "console@127.0.0.1") {
		t.Errorf("audit events = %+v, want one refused console login from 127.0.0.1", events)
	}

	resp, _ = login("s3cret")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("right token = %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies = %v, want one session cookie", cookies)
	}
	if c := cookies[0]; !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP", c)
	}

	token := b.csrf(t)
	if resp, body := b.api(t, "GET", "/console/api/runs", token, nil); resp.StatusCode != 200 {
		t.Errorf("API with session and token = %d: %s", resp.StatusCode, body)
	}
	if resp, _ := b.api(t, "GET", "/console/api/runs", "", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("API with session but no token = %d, want 403", resp.StatusCode)
	}
	_, page := b.do(t, "GET", "/", nil, nil)
	if !strings.Contains(page, `action="/console/logout"`) {
		t.Error("a logged-in page has no log-out form")
	}

	// Logging out needs the page's token, then ends the session.
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if resp, _ := b.do(t, "POST", "/console/logout", form, strings.NewReader("csrf=nope")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without the token = %d, want 403", resp.StatusCode)
	}
	resp, _ = b.do(t, "POST", "/console/logout", form, strings.NewReader("csrf="+token))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout = %d, want 303", resp.StatusCode)
	}
	if resp, _ := b.api(t, "GET", "/console/api/runs", token, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API after logout = %d, want 401", resp.StatusCode)
	}
}

func TestLoginAttemptsAreThrottled(t *testing.T) {
	t.Parallel()
	b := setup(t, web.Config{Addr: ":8080", AdminToken: "s3cret"}) // the clock stands still
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	var statuses []int
	for range 12 {
		resp, _ := b.do(t, "POST", "/console/login", form, strings.NewReader("token=guess"))
		statuses = append(statuses, resp.StatusCode)
	}
	if statuses[0] != http.StatusUnauthorized || statuses[11] != http.StatusTooManyRequests {
		t.Errorf("statuses of 12 wrong logins = %v, want 401s, then 429", statuses)
	}
	// Refused logins are sampled like every request refused before it is
	// verified: the first few of a source are audited one by one (the rest
	// are one summary line when the minute ends).
	b.auditor.mu.Lock()
	defer b.auditor.mu.Unlock()
	if n := len(b.auditor.events); n != switchboard.DefaultRejectsPerSource {
		t.Errorf("%d audited failures, want the first %d", n, switchboard.DefaultRejectsPerSource)
	}
	for _, e := range b.auditor.events {
		if e.Subject != "console login" || e.Outcome != "refused" || e.Detail != "wrong admin token" {
			t.Errorf("audited %+v", e)
		}
	}
}

func TestLoginCookieIsSecureOverTLS(t *testing.T) {
	t.Parallel()
	s := web.NewServer(web.Config{Addr: ":443", AdminToken: "s3cret", Store: &fakeStore{}, Commands: &fakeCommands{}})
	srv := httptest.NewTLSServer(s.Handler())
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.PostForm(srv.URL+"/console/login", url.Values{"token": {"s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := resp.Cookies(); len(c) != 1 || !c[0].Secure {
		t.Errorf("cookies over TLS = %+v, want one Secure cookie", c)
	}
}

func TestConsoleRefusesOffLoopbackWithoutAdminToken(t *testing.T) {
	t.Parallel()
	b := setup(t, web.Config{Addr: ":8080"})
	for _, r := range []struct{ method, path string }{{"GET", "/"}, {"GET", "/console/login"}, {"POST", "/console/login"}} {
		resp, body := b.do(t, r.method, r.path, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, strings.NewReader("token="))
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "console.admin_token") {
			t.Errorf("%s %s = %d, want 403 saying to set console.admin_token: %s", r.method, r.path, resp.StatusCode, body)
		}
	}
	resp, body := b.api(t, "GET", "/console/api/runs", "", nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "console.admin_token") {
		t.Errorf("API = %d, want 403 saying to set console.admin_token: %s", resp.StatusCode, body)
	}
}

func TestCommand(t *testing.T) {
	t.Parallel()
	b := setup(t, web.Config{})
	b.commands.handleFunc = func(req switchboard.Request) (switchboard.Ack, error) {
		return switchboard.Ack{Text: "Checking tools (i-0123…).", RunID: "run-7"}, nil
	}
	token := b.csrf(t)

	resp, body := b.api(t, "POST", "/console/api/command", token, map[string]string{
		"user": "U0OPS1", "channel": "C0OPS", "text": "  /EC2   status tools ",
	})
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d: %s", resp.StatusCode, body)
	}
	var got struct{ Ack switchboard.Ack }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if want := (switchboard.Ack{Text: "Checking tools (i-0123…).", RunID: "run-7"}); got.Ack != want {
		t.Errorf("ack = %+v, want %+v", got.Ack, want)
	}

	reqs := b.commands.requests()
	if len(reqs) != 1 {
		t.Fatalf("handler got %d requests, want 1", len(reqs))
	}
	req := reqs[0]
	if !strings.HasPrefix(req.DeliveryID, "console-") {
		t.Errorf("DeliveryID = %q, want a console delivery id", req.DeliveryID)
	}
	req.DeliveryID = ""
	want := switchboard.Request{Source: "console", Command: "/ec2", Text: "status tools", UserID: "U0OPS1", ChannelID: "C0OPS", ReceivedAt: now}
	if req != want {
		t.Errorf("request = %+v, want %+v", req, want)
	}

	lines := b.store.allLines()
	wantLines := []switchboard.TranscriptLine{
		{ID: 1, Time: now, ChannelID: "C0OPS", UserID: "U0OPS1", Kind: "command", Text: "/EC2   status tools"},
		{ID: 2, Time: now, ChannelID: "C0OPS", UserID: "U0OPS1", Kind: "ack", RunID: "run-7", Text: "Checking tools (i-0123…)."},
	}
	if len(lines) != len(wantLines) {
		t.Fatalf("transcript = %+v, want %+v", lines, wantLines)
	}
	for i := range lines {
		if lines[i] != wantLines[i] {
			t.Errorf("line %d = %+v, want %+v", i, lines[i], wantLines[i])
		}
	}
	if got := b.meter.all(); len(got) != 1 || got[0] != "console:ok" {
		t.Errorf("meter = %v, want [console:ok]", got)
	}

	// The transcript API serves those lines by channel, after an id.
	for _, tt := range []struct {
		query string
		ids   []int64
	}{
		{"channel=C0OPS", []int64{1, 2}},
		{"channel=C0OPS&after=1", []int64{2}},
		{"channel=C0OPS&after=2", []int64{}},
		{"channel=C0DEV", []int64{}},
	} {
		resp, body := b.api(t, "GET", "/console/api/transcript?"+tt.query, token, nil)
		var got struct{ Lines []switchboard.TranscriptLine }
		if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != 200 {
			t.Fatalf("transcript?%s = %d %s", tt.query, resp.StatusCode, body)
		}
		if got.Lines == nil {
			t.Errorf("transcript?%s: lines is null, want a list", tt.query)
		}
		ids := []int64{}
		for _, l := range got.Lines {
			ids = append(ids, l.ID)
		}
		if !equalIDs(ids, tt.ids) {
			t.Errorf("transcript?%s ids = %v, want %v", tt.query, ids, tt.ids)
		}
	}
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCommandErrors(t *testing.T) {
	t.Parallel()
	valid := `{"user":"U0OPS1","channel":"C0OPS","text":"/ec2 status"}`
	tests := []struct {
		name      string
		body      string
		handle    func(switchboard.Request) (switchboard.Ack, error)
		appendErr error
		want      int
		wantText  string // in the body
		wantLines int
		wantMeter string
	}{
		{
			name: "refusal is an ack",
			body: valid,
			handle: func(switchboard.Request) (switchboard.Ack, error) {
				return switchboard.Ack{}, switchboard.Errorf(switchboard.EFORBIDDEN, "You are not on /ec2's allow list.")
			},
			want: 200, wantText: `"text":"You are not on /ec2's allow list."`, wantLines: 2, wantMeter: "console:refused",
		},
		{
			name: "unexpected error is an ack without internals",
			body: valid,
			handle: func(switchboard.Request) (switchboard.Ack, error) {
				return switchboard.Ack{}, errors.New("pq: relation runs does not exist")
			},
			want: 200, wantText: "Something went wrong inside Switchboard", wantLines: 2, wantMeter: "console:internal",
		},
		{name: "bad JSON", body: `{"user":`, want: 400, wantText: `"code":"invalid"`, wantMeter: "console:invalid"},
		{name: "unknown field", body: `{"user":"U0OPS1","channel":"C0OPS","text":"/ec2 status","as":"root"}`, want: 400, wantText: "as", wantMeter: "console:invalid"},
		{name: "no user", body: `{"channel":"C0OPS","text":"/ec2 status"}`, want: 400, wantText: "Pick a user", wantMeter: "console:invalid"},
		{name: "no channel", body: `{"user":"U0OPS1","text":"/ec2 status"}`, want: 400, wantText: "Pick a channel", wantMeter: "console:invalid"},
		{name: "not a slash command", body: `{"user":"U0OPS1","channel":"C0OPS","text":"hello"}`, want: 400, wantText: "slash command", wantMeter: "console:invalid"},
		{name: "id with spaces", body: `{"user":"U0 OPS1","channel":"C0OPS","text":"/ec2 status"}`, want: 400, wantText: "single words", wantMeter: "console:invalid"},
		{
			name: "over 64 KiB",
			body: `{"user":"U0OPS1","channel":"C0OPS","text":"/ec2 status ` + strings.Repeat("x", 64<<10) + `"}`,
			want: 413, wantText: `"code":"too_large"`, wantMeter: "console:too_large",
		},
		{name: "store down", body: valid, appendErr: errors.New("disk I/O error"), want: 500, wantText: "Something went wrong", wantMeter: "console:internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, web.Config{})
			b.commands.handleFunc = tt.handle
			b.store.appendErr = tt.appendErr
			token := b.csrf(t)
			resp, body := b.do(t, "POST", "/console/api/command", http.Header{
				"X-Switchboard-CSRF": {token}, "Content-Type": {"application/json"},
			}, strings.NewReader(tt.body))
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if !strings.Contains(body, tt.wantText) {
				t.Errorf("body %s does not contain %q", body, tt.wantText)
			}
			if strings.Contains(body, "pq:") || strings.Contains(body, "disk I/O") {
				t.Errorf("body %s leaks an internal error", body)
			}
			lines := b.store.allLines()
			if len(lines) != tt.wantLines {
				t.Fatalf("transcript has %d lines, want %d: %+v", len(lines), tt.wantLines, lines)
			}
			if tt.wantLines == 2 && (lines[1].Kind != "ack" || lines[1].UserID != "U0OPS1" || !strings.Contains(body, lines[1].Text)) {
				t.Errorf("ack line = %+v, want the ephemeral ack the response carries", lines[1])
			}
			if got := b.meter.all(); len(got) != 1 || got[0] != tt.wantMeter {
				t.Errorf("meter = %v, want [%s]", got, tt.wantMeter)
			}
		})
	}
}

func TestRunsAndAudit(t *testing.T) {
	t.Parallel()
	b := setup(t, web.Config{})
	b.store.runs = []switchboard.Run{{ID: "run-1", Workflow: "ec2.start", State: switchboard.RunRunning,
		Request: switchboard.Request{UserID: "U0OPS1", ChannelID: "C0OPS"}, CreatedAt: now}}
	b.store.audit = []switchboard.AuditEvent{{ID: 1, Time: now, Kind: switchboard.AuditDecision, Actor: "U0OPS1", Outcome: "allowed"}}
	token := b.csrf(t)

	tests := []struct {
		path      string
		want      int
		wantLimit int
		wantSince time.Time
		contains  string
	}{
		{"/console/api/runs", 200, 50, time.Time{}, `"runs":[{"id":"run-1"`},
		{"/console/api/runs?limit=5", 200, 5, time.Time{}, `"workflow":"ec2.start"`},
		{"/console/api/runs?limit=100000", 200, 500, time.Time{}, `"runs"`},
		{"/console/api/runs?limit=many", 400, 0, time.Time{}, "limit must be a whole number"},
		{"/console/api/runs?limit=0", 400, 0, time.Time{}, "limit must be a whole number"},
		{"/console/api/audit", 200, 200, now.Add(-time.Hour), `"events":[{"id":1`},
		{"/console/api/audit?since=30m&limit=10", 200, 10, now.Add(-30 * time.Minute), `"outcome":"allowed"`},
		{"/console/api/audit?since=2024-04-30T00:00:00Z", 200, 200, time.Date(2024, 4, 30, 0, 0, 0, 0, time.UTC), `"events"`},
		{"/console/api/audit?since=yesterday", 400, 0, time.Time{}, "since must be a duration"},
		{"/console/api/audit?since=-1h", 400, 0, time.Time{}, "since must be a duration"},
		{"/console/api/transcript", 400, 0, time.Time{}, "Name the channel"},
		{"/console/api/transcript?channel=C0OPS&after=x", 400, 0, time.Time{}, "after must be a line id"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			// Not parallel: the store remembers the last call's arguments.
			resp, body := b.api(t, "GET", tt.path, token, nil)
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if !strings.Contains(body, tt.contains) {
				t.Errorf("body %s does not contain %q", body, tt.contains)
			}
			if tt.want != 200 {
				return
			}
			b.store.mu.Lock()
			defer b.store.mu.Unlock()
			if strings.Contains(tt.path, "/runs") && b.store.runsLimit != tt.wantLimit {
				t.Errorf("ListRuns limit = %d, want %d", b.store.runsLimit, tt.wantLimit)
			}
			if strings.Contains(tt.path, "/audit") && (b.store.auditArgs.Limit != tt.wantLimit || !b.store.auditArgs.Since.Equal(tt.wantSince)) {
				t.Errorf("ListAudit(since %v, limit %d), want (since %v, limit %d)", b.store.auditArgs.Since, b.store.auditArgs.Limit, tt.wantSince, tt.wantLimit)
			}

		})
	}
	// The audit log's filters reach the store as they were given.
	resp, body := b.api(t, "GET", "/console/api/audit?actor=U0OPS1&kind=request&outcome=refused&run=run_ab", token, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("filtered audit: %d %s", resp.StatusCode, body)
	}
	b.store.mu.Lock()
	defer b.store.mu.Unlock()
	want := switchboard.AuditQuery{Since: now.Add(-time.Hour), Limit: 200, Actor: "U0OPS1", Kind: "request", Outcome: "refused", RunID: "run_ab"}
	if got := b.store.auditArgs; !got.Since.Equal(want.Since) || got.Actor != want.Actor || got.Kind != want.Kind || got.Outcome != want.Outcome || got.RunID != want.RunID || got.Limit != want.Limit {
		t.Errorf("ListAudit(%+v), want %+v", got, want)
	}
}

func TestErrorStatus(t *testing.T) {
	t.Parallel()
	tests := map[string]int{
		switchboard.EINVALID:      400,
		switchboard.EUNAUTHORIZED: 401,
		switchboard.EFORBIDDEN:    403,
		switchboard.ENOTFOUND:     404,
		switchboard.ECONFLICT:     409,
		switchboard.ETOOLARGE:     413,
		switchboard.ETHROTTLED:    429,
		switchboard.EUNAVAILABLE:  503,
		switchboard.EINTERNAL:     500,
		"something new":           500,
	}
	for code, want := range tests {
		if got := web.ErrorStatus(code); got != want {
			t.Errorf("ErrorStatus(%q) = %d, want %d", code, got, want)
		}
	}
}

// decideNothing is an Approver that must not be asked.
type decideNothing struct{ t *testing.T }

func (d decideNothing) Decide(context.Context, string, string, bool, string) (*switchboard.Approval, string, error) {
	d.t.Errorf("a malformed body reached the approver")
	return nil, "", nil
}

// A malformed body to the approvals API is a 400 with the reason, and
// decides nothing.
func TestApprovalAPIRefusesMalformedBodies(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"user":`, `{"user":"U0OPS2","approve":"yes"}`, `{"user":"U0OPS2","approve":true,"as":"root"}`} {
		b := setup(t, web.Config{Approvals: decideNothing{t}})
		resp, got := b.do(t, "POST", "/console/api/approvals/r-1-2", http.Header{
			"X-Switchboard-CSRF": {b.csrf(t)}, "Content-Type": {"application/json"},
		}, strings.NewReader(body))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(got, `"code":"invalid"`) {
			t.Errorf("%s: status %d, body %s; want 400 invalid", body, resp.StatusCode, got)
		}
	}
}

// The start banner's address logs a browser in once: the session cookie is
// set and the browser is sent on to the same address without the token,
// so it stays out of the address bar and the history. A wrong token in
// the address is a refused, audited login, like a wrong one in the form.
func TestLoginLink(t *testing.T) {
	t.Parallel()
	b := setup(t, web.Config{Addr: "127.0.0.1:8080", LocalToken: localToken})
	resp, body := b.do(t, "GET", "/?token=wrong&x=1", nil, nil)
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 || csrfMeta.MatchString(body) {
		t.Errorf("wrong token in the address = %d with cookies %v, want 401, no session and no CSRF token: %s", resp.StatusCode, resp.Cookies(), body)
	}
	b.auditor.mu.Lock()
	n := len(b.auditor.events)
	b.auditor.mu.Unlock()
	if n != 1 {
		t.Errorf("%d audit events for a wrong token in the address, want 1", n)
	}

	resp, _ = b.do(t, "GET", "/?token="+localToken+"&x=1", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/?x=1" || len(resp.Cookies()) != 1 {
		t.Fatalf("right token in the address = %d to %q with cookies %v, want 303 to /?x=1 with a session", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}
	if resp, body := b.do(t, "GET", "/", nil, nil); resp.StatusCode != 200 || !csrfMeta.MatchString(body) {
		t.Errorf("GET / after the link = %d, want the console page", resp.StatusCode)
	}
	// Opening the link again while logged in just drops the token.
	if resp, _ := b.do(t, "GET", "/?token="+localToken, nil, nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("the link again = %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// The generated token was printed for someone at this machine and would
// travel in the clear from elsewhere: off loopback it logs in nowhere.
func TestLocalTokenOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	b := setup(t, web.Config{Addr: "0.0.0.0:8080", AdminToken: "s3cret", LocalToken: localToken})
	if resp, _ := b.do(t, "GET", "/?token="+localToken, nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the generated token off loopback = %d, want 401", resp.StatusCode)
	}
	b.login(t, "s3cret")
}

// With a real chat platform configured, the console acts as the logged-in
// person's chat identity: the user a request names is ignored, for
// commands and for approval decisions; a login that names nobody can look
// but not act.
func TestConsoleActsAsTheOperator(t *testing.T) {
	t.Parallel()
	approver := &recordingApprover{}
	cfg := web.Config{Addr: "127.0.0.1:8080", AdminToken: "admin-token-0123456789", Operator: "U0OPS1",
		Operators: map[string]string{"U0OPS2": "ben-token-0123456789"}, AsOperator: true, Approvals: approver}

	for _, tt := range []struct{ token, want string }{{"admin-token-0123456789", "U0OPS1"}, {"ben-token-0123456789", "U0OPS2"}} {
		b := setup(t, cfg)
		b.login(t, tt.token)
		_, page := b.do(t, "GET", "/", nil, nil)
		if !strings.Contains(page, `<option value="`+tt.want+`">`) || strings.Contains(page, `<option value="U0DEV1">`) || strings.Contains(page, "Other user…") {
			t.Errorf("%s: the user picker does not hold only %s:\n%s", tt.want, tt.want, page)
		}
		csrf := b.csrf(t)
		resp, body := b.api(t, "POST", "/console/api/command", csrf, map[string]string{"user": "U0BOSS", "channel": "C0OPS", "text": "/ec2 status"})
		if resp.StatusCode != 200 {
			t.Fatalf("command = %d: %s", resp.StatusCode, body)
		}
		if reqs := b.commands.requests(); len(reqs) != 1 || reqs[0].UserID != tt.want {
			t.Errorf("command ran as %+v, want %s", reqs, tt.want)
		}
		resp, body = b.api(t, "POST", "/console/api/approvals/r-1-2", csrf, map[string]any{"user": "U0BOSS", "approve": true})
		if resp.StatusCode != 200 {
			t.Fatalf("approval = %d: %s", resp.StatusCode, body)
		}
		if got := approver.last(); got != tt.want {
			t.Errorf("decided as %q, want %s", got, tt.want)
		}
	}

	// An admin token that names nobody: the console shows, but acts for nobody.
	cfg.Operator = ""
	b := setup(t, cfg)
	b.login(t, "admin-token-0123456789")
	csrf := b.csrf(t)
	if resp, _ := b.api(t, "GET", "/console/api/runs", csrf, nil); resp.StatusCode != 200 {
		t.Errorf("runs for a login naming nobody = %d, want 200", resp.StatusCode)
	}
	resp, body := b.api(t, "POST", "/console/api/command", csrf, map[string]string{"user": "U0OPS1", "channel": "C0OPS", "text": "/ec2 status"})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "console.operator") {
		t.Errorf("command by a login naming nobody = %d, want 403 naming console.operator: %s", resp.StatusCode, body)
	}
	resp, body = b.api(t, "POST", "/console/api/approvals/r-1-2", csrf, map[string]any{"user": "U0OPS1", "approve": true})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "console.operator") {
		t.Errorf("approval by a login naming nobody = %d, want 403: %s", resp.StatusCode, body)
	}
	if n := len(b.commands.requests()); n != 0 {
		t.Errorf("%d commands ran for a login naming nobody", n)
	}
}

// recordingApprover remembers who decided last.
type recordingApprover struct {
	mu   sync.Mutex
	user string
}

func (a *recordingApprover) Decide(_ context.Context, _, user string, _ bool, _ string) (*switchboard.Approval, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.user = user
	return &switchboard.Approval{State: "approved"}, "Thanks: approved by " + user + ".", nil
}

func (a *recordingApprover) last() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.user
}
