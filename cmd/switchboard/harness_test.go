package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/testenv"
)

// The end-to-end tests run the real binary, as a user would, and talk to it
// over HTTP on loopback.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchboard-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "switchboard")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build switchboard: %v\n%s", err, out)
		os.Exit(1)
	}
	code := 0
	func() {
		defer os.RemoveAll(dir)
		testenv.Main(m)
	}()
	os.Exit(code)
}

const testSecret = "e2e-signing-secret-0123456789abcdef"

// server is one switchboard process.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    string
	config  string
	dataDir string
	env     []string
	logs    *logBuffer
}

// logBuffer is the process's output, which tests may read while it runs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// slackHeader begins the end-to-end tests' configs: the store, and Slack
// with the fake Slack's API and answers to it over loopback http.
const slackHeader = `listen: {{listen}}
data_dir: {{data_dir}}
store: {{store}}
slack:
  signing_secret: ${SLACK_SIGNING_SECRET}
  bot_token: xoxb-e2e-test
  api_url: {{api_url}}
  response_url_hosts: ["{{slack_origin}}"]   # the fake Slack, on loopback over http
`

// configYAML is the config the end-to-end tests use; startServer fills in
// the {{...}} placeholders.
const configYAML = slackHeader + `clouds:
  main:
    provider: sim
    sim: { pending_duration: {{pending}}, stopping_duration: 1s }
    instances:
      - { id: i-0123456789abcdef0, name: tools, state: stopped, tags: { env: dev } }
      - { id: i-0fedcba9876543210, name: web-1, state: running, tags: { env: prod, role: web } }
groups:
  ops: [U0OPS1, U0OPS2]
commands:
  /ec2:
    cloud: main
    allow:
      users: [group:ops]
      channels: [C0OPS]
    instances:
      tools: { id: i-0123456789abcdef0, elastic_ip: 107.20.248.29 }
      web: { tags: { role: web } }
    actions: [status, start, stop, reboot, list]
`

type serverOptions struct {
	store   string // default: SQLite in the data dir
	pending string // sim pending duration, default 1s
	config  string // default: configYAML
}

// fillConfig puts a server's addresses and paths into a config template.
// {{slack_origin}} is the fake Slack's http://127.0.0.1:PORT, which a
// config must list in slack.response_url_hosts for its response_urls to be
// taken (Slack's own are https://hooks.slack.com).
func fillConfig(template, listen, dataDir, store, apiURL, pending string) string {
	return strings.NewReplacer("{{listen}}", listen, "{{data_dir}}", dataDir, "{{store}}", store,
		"{{api_url}}", apiURL, "{{pending}}", pending, "{{slack_origin}}", strings.TrimSuffix(apiURL, "/api/")).Replace(template)
}

func startServer(t *testing.T, slackAPI string, opts serverOptions) *server {
	t.Helper()
	dir := t.TempDir()
	if opts.store == "" {
		opts.store = "sqlite://" + filepath.Join(dir, "switchboard.db")
	}
	if opts.pending == "" {
		opts.pending = "1s"
	}
	s := &server{t: t, addr: testenv.FreeAddr(t), dataDir: dir, config: filepath.Join(dir, "switchboard.yaml"),
		env: append(os.Environ(), "SLACK_SIGNING_SECRET="+testSecret)}
	if opts.config == "" {
		opts.config = configYAML
	}
	if strings.Contains(opts.config, "api_url: {{api_url}}") && !strings.Contains(opts.config, "{{slack_origin}}") {
		// Otherwise every command is refused for answering off Slack's
		// hosts, and the test times out waiting for answers.
		t.Fatal(`the config's slack section must let answers reach the fake Slack: add response_url_hosts: ["{{slack_origin}}"]`)
	}
	yaml := fillConfig(opts.config, s.addr, dir, opts.store, slackAPI+"/api/", opts.pending)
	if err := os.WriteFile(s.config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	s.logs = &logBuffer{}
	s.cmd = exec.Command(binary, "serve", "--config", s.config)
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + s.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("switchboard did not become healthy:\n%s", s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill9 kills the process the hard way: no drain, no cleanup.
func (s *server) kill9() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			s.t.Errorf("switchboard exited with %v after SIGTERM:\n%s", err, s.logs)
		}
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		s.t.Errorf("switchboard did not stop within 30s of SIGTERM:\n%s", s.logs)
	}
	s.cmd = nil
}

func (s *server) url(path string) string { return "http://" + s.addr + path }

// loginToken is the console's login token, which the server made in its
// data directory at first start.
func (s *server) loginToken() string {
	s.t.Helper()
	token, err := os.ReadFile(filepath.Join(s.dataDir, "console-token"))
	if err != nil {
		s.t.Fatalf("read the console's login token: %v", err)
	}
	return strings.TrimSpace(string(token))
}

// consoleURL is the console's address at path (which may end in a
// #fragment) with the login token, as the start banner prints it: opening
// it logs a browser in.
func (s *server) consoleURL(path string) string {
	path, fragment, _ := strings.Cut(path, "#")
	u := s.url(path) + "?token=" + url.QueryEscape(s.loginToken())
	if fragment != "" {
		u += "#" + fragment
	}
	return u
}

// slackPeer stands in for Slack: it receives response_url posts and Web API
// calls, and can be told to fail. Like Slack, it keeps each channel's
// history (chat.postMessage posts with their metadata, and in_channel
// response_url posts as the app's messages) and serves it to
// conversations.history and conversations.replies.
type slackPeer struct {
	*httptest.Server
	mu        sync.Mutex
	responses map[string][]string // response_url path -> texts posted
	raw       map[string][]string // response_url path -> bodies posted
	posts     []url.Values        // chat.postMessage calls, with the ts given ("ts")
	updates   []url.Values        // chat.update calls
	failNext  int                 // answer this many response_url posts with 500
	channels  map[string]string   // response_url path -> its command's channel
	history   map[string][]peerMessage
	seq       int
	firstAt   map[string]time.Time // response_url path -> when its first answer came
	// onAnswer, when set, is called with each response_url post once it is
	// recorded, before it is answered.
	onAnswer func(path string)
}

// peerMessage is a message in a channel's history.
type peerMessage struct {
	TS       string          `json:"ts"`
	ThreadTS string          `json:"thread_ts,omitempty"`
	Text     string          `json:"text"`
	BotID    string          `json:"bot_id"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

func newSlackPeer(t *testing.T) *slackPeer {
	p := &slackPeer{responses: map[string][]string{}, raw: map[string][]string{}, channels: map[string]string{}, history: map[string][]peerMessage{},
		firstAt: map[string]time.Time{}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		defer p.mu.Unlock()
		if method, ok := strings.CutPrefix(r.URL.Path, "/api/"); ok {
			form, _ := url.ParseQuery(string(body))
			w.Header().Set("Content-Type", "application/json")
			switch method {
			case "conversations.history", "conversations.replies":
				p.serveHistory(w, form)
			case "chat.update":
				p.updates = append(p.updates, form)
				fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":%q}`, form.Get("channel"), form.Get("ts"))
			case "chat.postMessage":
				ts := p.add(form.Get("channel"), peerMessage{ThreadTS: form.Get("thread_ts"), Text: form.Get("text"), Metadata: json.RawMessage(form.Get("metadata"))})
				form.Set("ts", ts)
				p.posts = append(p.posts, form)
				fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":%q}`, form.Get("channel"), ts)
			default: // users.info and the like: nothing to say
				fmt.Fprint(w, `{"ok":true}`)
			}
			return
		}
		if p.failNext > 0 {
			p.failNext--
			http.Error(w, "slack is having a moment", http.StatusInternalServerError)
			return
		}
		var msg struct {
			Text         string `json:"text"`
			ResponseType string `json:"response_type"`
		}
		_ = json.Unmarshal(body, &msg)
		if _, ok := p.firstAt[r.URL.Path]; !ok {
			p.firstAt[r.URL.Path] = time.Now()
		}
		p.responses[r.URL.Path] = append(p.responses[r.URL.Path], msg.Text)
		p.raw[r.URL.Path] = append(p.raw[r.URL.Path], string(body))
		if ch := p.channels[r.URL.Path]; ch != "" && msg.ResponseType == "in_channel" {
			p.add(ch, peerMessage{Text: msg.Text})
		}
		if p.onAnswer != nil {
			p.onAnswer(r.URL.Path)
		}
	}))
	t.Cleanup(p.Close)
	return p
}

// add puts a message from the app in a channel's history and returns its
// ts. Call with p.mu held.
func (p *slackPeer) add(channel string, m peerMessage) string {
	p.seq++
	m.TS = fmt.Sprintf("%d.%06d", time.Now().Unix(), p.seq)
	m.BotID = "B0SWITCHBOARD"
	if len(m.Metadata) == 0 {
		m.Metadata = nil
	}
	p.history[channel] = append(p.history[channel], m)
	return m.TS
}

// serveHistory answers conversations.history (or .replies, with ts) with
// the channel's messages newer than oldest, newest first. Call with p.mu
// held.
func (p *slackPeer) serveHistory(w http.ResponseWriter, form url.Values) {
	oldest, _ := strconv.ParseFloat(form.Get("oldest"), 64)
	var out []peerMessage
	for _, m := range slices.Backward(p.history[form.Get("channel")]) {
		at, _ := strconv.ParseFloat(m.TS, 64)
		if at <= oldest || form.Get("ts") != "" && m.ThreadTS != form.Get("ts") && m.TS != form.Get("ts") {
			continue
		}
		if form.Get("include_all_metadata") != "1" {
			m.Metadata = nil
		}
		out = append(out, m)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "messages": out, "has_more": false})
}

func (p *slackPeer) answers(path string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.responses[path]...)
}

// waitAnswers waits until n answers arrived at path, then a little longer to
// catch any duplicate.
func (p *slackPeer) waitAnswers(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(p.answers(path)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d answer(s) at %s; got %q", n, path, p.answers(path))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	return p.answers(path)
}

var triggerSeq atomic.Int64

// slashCommand builds a signed /ec2 request as Slack sends it.
func slashCommand(t *testing.T, s *server, peer *slackPeer, user, channel, text string) (*http.Request, string) {
	t.Helper()
	return slashCommandAs(t, s, peer, "/ec2", user, channel, text)
}

// slashCommandAs builds a signed request for any slash command.
func slashCommandAs(t *testing.T, s *server, peer *slackPeer, command, user, channel, text string) (*http.Request, string) {
	t.Helper()
	seq := triggerSeq.Add(1)
	path := "/commands/T1/" + strconv.FormatInt(seq, 10)
	peer.mu.Lock()
	peer.channels[path] = channel
	peer.mu.Unlock()
	form := url.Values{
		"token": {"legacy"}, "team_id": {"T1"}, "team_domain": {"e2e"}, "channel_id": {channel}, "channel_name": {"ops"},
		"user_id": {user}, "user_name": {"someone"}, "command": {command}, "text": {text},
		"response_url": {peer.URL + path}, "trigger_id": {fmt.Sprintf("trigger.%d.%d", time.Now().UnixNano(), seq)},
	}
	body := form.Encode()
	req, err := http.NewRequest(http.MethodPost, s.url("/slack/commands"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	sign(req, body, time.Now())
	return req, path
}

func sign(req *http.Request, body string, at time.Time) {
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(testSecret))
	mac.Write([]byte("v0:" + ts + ":" + body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
}

// send posts a request and returns the status and the ack text.
func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var ack struct {
		Text string `json:"text"`
	}
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &ack); err != nil {
			t.Fatalf("ack is not JSON: %q", body)
		}
		return resp.StatusCode, ack.Text
	}
	return resp.StatusCode, string(body)
}
