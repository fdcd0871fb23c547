package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/switchboardhq/switchboard/alibaba/ecstest"
	"github.com/switchboardhq/switchboard/testenv"
)

const secretsConfig = `listen: {{listen}}
data_dir: {{data_dir}}
store: {{store}}
log: { level: debug }
slack:
  signing_secret: ${SLACK_SIGNING_SECRET}
  bot_token: ${SLACK_BOT_TOKEN}
  api_url: {{api_url}}
  response_url_hosts: ["{{slack_origin}}"]   # the fake Slack, on loopback over http
console: { admin_token: "${ADMIN_TOKEN}" }
clouds:
  china:
    provider: alibaba
    region: cn-hangzhou
    endpoint: %[1]s
    access_key_id: LTAI-scan
    access_key_secret: ${ALI_SECRET}
groups:
  ops: [U0OPS1]
commands:
  /ecs:
    cloud: china
    allow: { users: [group:ops] }
    instances:
      api: { id: i-bp1g6zv0ce8oghu7k5p3 }
http:
  allow: ["%[2]s", "%[3]s"]
workflows:
  call:
    trigger: { command: /call }
    allow: { users: [group:ops], channels: [C0OPS] }
    steps:
      - id: ok
        http:
          method: POST
          url: "%[2]s/v1/ok?token=${QUERY_TOKEN}&page=1"
          headers: { Authorization: "Bearer ${HEADER_TOKEN}" }
          body: '{{ event.text }}'
      - notify: { text: 'first call: {{ steps.ok.status }} {{ steps.ok.body }}' }
      - http:
          url: "%[3]s/v1/down?token=${QUERY_TOKEN}"
          headers: { Authorization: "Bearer ${HEADER_TOKEN}", X-Api-Key: "${HEADER_TOKEN}" }
    on_error:
      - notify: { text: 'the call failed: {{ error }}' }
`

// Every configured secret stays out of everything Switchboard writes and
// shows. The real binary runs with a Slack signing secret and bot token, an
// admin token, a cloud's access key secret, and an http step that carries
// a token in a header and another in its URL's query; it takes commands on
// the cloud and runs the workflow, whose second call fails; then every
// surface is scanned for every secret: the database (the file's bytes and
// every row of every table), the process log, the audit command, the
// console's APIs, what the fake Slack received, and /metrics.
func TestSecretsStayOutOfEverySurface(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{
		"SLACK_SIGNING_SECRET": testSecret,
		"SLACK_BOT_TOKEN":      "xoxb-scan-bot-5e8a1c",
		"ADMIN_TOKEN":          "admin-scan-token-9b7d3e",
		"ALI_SECRET":           "ali-scan-secret-4f2b6d",
		"HEADER_TOKEN":         "hdr-scan-token-1a9c7e",
		"QUERY_TOKEN":          "qry-scan-token-8d3f2b",
	}
	ecs := ecstest.NewServer(ecstest.Options{
		AccessKeys: map[string]string{"LTAI-scan": secrets["ALI_SECRET"]},
		Instances:  []ecstest.Instance{{ID: "i-bp1g6zv0ce8oghu7k5p3", Name: "api", Status: ecstest.StatusStopped}},
	})
	t.Cleanup(ecs.Close)

	// The service the workflow calls checks that the step got the values
	// of its references, and keeps what it was sent.
	var mu sync.Mutex
	var received []string
	service := newHitCounter(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		received = append(received, string(body))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+secrets["HEADER_TOKEN"] || r.URL.Query().Get("token") != secrets["QUERY_TOKEN"] {
			http.Error(w, "who are you?", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	})
	down := testenv.FreeAddr(t) // nothing listens there: the second call fails

	peer := newSlackPeer(t)
	config := fmt.Sprintf(secretsConfig, ecs.URL, service.URL, "http://"+down)
	dir := t.TempDir()
	s := &server{t: t, addr: testenv.FreeAddr(t), dataDir: dir, config: filepath.Join(dir, "switchboard.yaml"), env: os.Environ()}
	for k, v := range secrets {
		s.env = append(s.env, k+"="+v)
	}
	yaml := fillConfig(config, s.addr, dir, "sqlite://"+filepath.Join(dir, "switchboard.db"), peer.URL+"/api/", "1s")
	if err := os.WriteFile(s.config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.stop)

	// Drive it: a cloud command (signed with the access key secret), the
	// workflow (one call that works, one that fails), and a user who types
	// a reference, hoping the step resolves it.
	for _, c := range []struct{ command, text, want string }{
		{"/ecs", "start api", "api (i-bp1g6zv0ce8oghu7k5p3) is now running"},
		{"/call", "${HEADER_TOKEN} ${QUERY_TOKEN}", "the call failed: http GET http://" + down + "/v1/down?token=[redacted]"},
	} {
		req, path := slashCommandAs(t, s, peer, c.command, "U0OPS1", "C0OPS", c.text)
		if status, ack := send(t, req); status != 200 {
			t.Fatalf("%s: ack %d %q", c.command, status, ack)
		}
		got := strings.Join(peer.waitAnswers(t, path, 1), "\n")
		if c.command == "/call" {
			got = strings.Join(peer.waitAnswers(t, path, 2), "\n")
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("%s %s answered %q, want %q", c.command, c.text, got, c.want)
		}
	}
	mu.Lock()
	if len(received) != 1 || received[0] != "${HEADER_TOKEN} ${QUERY_TOKEN}" {
		t.Errorf("the service got %q: want the first call, its body as the user typed it (references not resolved)", received)
	}
	mu.Unlock()
	if !strings.Contains(strings.Join(peer.answers(peerPathOf(t, peer, "first call")), ""), "first call: 200") {
		t.Errorf("the first call did not get through with its header and query token")
	}

	surfaces := map[string]string{}
	surfaces["console APIs"] = consoleAPIs(t, s, secrets["ADMIN_TOKEN"])
	surfaces["/metrics"] = get(t, s.url("/metrics"))
	peer.mu.Lock()
	var slackSaw strings.Builder
	for path, bodies := range peer.raw {
		fmt.Fprintln(&slackSaw, path, strings.Join(bodies, "\n"))
	}
	for _, form := range peer.posts {
		form := cloneForm(form)
		delete(form, "token") // the bot token is how Slack's API is called, not a message
		fmt.Fprintln(&slackSaw, form)
	}
	peer.mu.Unlock()
	surfaces["messages Slack received"] = slackSaw.String()
	s.stop()
	surfaces["process log"] = s.logs.String()
	surfaces["audit command"] = auditLines(t, s) + runCLI(t, s, "audit", "--config", s.config, "--since", "1h")
	surfaces["database rows"] = dumpTables(t, filepath.Join(dir, "switchboard.db"))
	files, _ := filepath.Glob(filepath.Join(dir, "switchboard.db*"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		surfaces["database file "+filepath.Base(f)] = string(raw)
	}

	if !strings.Contains(surfaces["database rows"], "${HEADER_TOKEN}") {
		t.Errorf("the run's plan does not keep the reference ${HEADER_TOKEN}")
	}
	if !strings.Contains(surfaces["audit command"], "?token=[redacted]") {
		t.Errorf("the audit log does not record the failed call (its URL's query redacted):\n%s", surfaces["audit command"])
	}
	for where, text := range surfaces {
		if text == "" && !strings.HasPrefix(where, "database file") {
			t.Errorf("%s: nothing to scan", where)
		}
		for name, secret := range secrets {
			if i := strings.Index(text, secret); i >= 0 {
				t.Errorf("%s holds %s: …%s…", where, name, text[max(0, i-120):min(len(text), i+len(secret)+40)])
			}
		}
	}
}

// peerPathOf finds the response_url path whose answers hold text.
func peerPathOf(t *testing.T, p *slackPeer, text string) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for path, texts := range p.responses {
		if strings.Contains(strings.Join(texts, "\n"), text) {
			return path
		}
	}
	return ""
}

func cloneForm(form url.Values) url.Values {
	out := url.Values{}
	for k, v := range form {
		out[k] = v
	}
	return out
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// runCLI runs the binary's command with the server's environment.
func runCLI(t *testing.T, s *server, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("switchboard %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// consoleAPIs logs in to the console with the admin token and returns what
// its APIs answer.
func consoleAPIs(t *testing.T, s *server, adminToken string) string {
	t.Helper()
	console := openConsole(t, s, adminToken)
	var out strings.Builder
	for _, path := range []string{"/console/api/runs", "/console/api/runs?limit=500", "/console/api/audit", "/console/api/audit?limit=500",
		"/console/api/transcript?channel=C0OPS", "/console/api/status"} {
		fmt.Fprintln(&out, path, console.get(t, path))
	}
	if !strings.Contains(out.String(), "/v1/down") {
		t.Errorf("the console APIs do not show the failed call:\n%s", out.String())
	}
	return out.String()
}

// console is a browser's session with the console: its cookies and the
// page's CSRF token.
type console struct {
	s      *server
	client *http.Client
	csrf   string
}

// openConsole logs in with token (empty: the token the server made in its
// data directory) and reads the page's CSRF token.
func openConsole(t *testing.T, s *server, token string) *console {
	t.Helper()
	if token == "" {
		token = s.loginToken()
	}
	jar, _ := cookiejar.New(nil)
	c := &console{s: s, client: &http.Client{Jar: jar}}
	resp, err := c.client.PostForm(s.url("/console/login"), url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfMeta.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the console page (%d):\n%s", resp.StatusCode, page)
	}
	c.csrf = string(m[1])
	return c
}

// get calls a console API and returns its answer, failing unless 200.
func (c *console) get(t *testing.T, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.s.url(path), nil)
	req.Header.Set("X-Switchboard-CSRF", c.csrf)
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return string(body)
}

// post calls a console API with a JSON body and returns the status and
// the answer.
func (c *console) post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.s.url(path), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Switchboard-CSRF", c.csrf)
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// dumpTables returns every row of every table of a SQLite database as
// text.
func dumpTables(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	var out strings.Builder
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			line, _ := json.Marshal(vals)
			fmt.Fprintf(&out, "%s %s", table, line)
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					out.Write(b) // JSON above shows bytes as base64
				}
			}
			out.WriteString("\n")
		}
		rows.Close()
	}
	return out.String()
}
