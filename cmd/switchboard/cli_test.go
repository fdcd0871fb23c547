package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard"
)

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	goodYAML := fillConfig(configYAML, "127.0.0.1:8080", dir, "sqlite://"+dir+"/sb.db", "http://127.0.0.1:9/api/", "1s")
	badYAML := strings.Replace(goodYAML, "users: [group:ops]", "users: [group:opz]", 1)
	badYAML = strings.Replace(badYAML, "cloud: main", "clod: main", 1)
	if err := os.WriteFile(good, []byte(goodYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(badYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	env := getenv(map[string]string{"SLACK_SIGNING_SECRET": "s3cret-value-never-printed"})

	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"check", "--config", good}, env, &out, &errOut); err != nil {
		t.Fatalf("check good config: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "is valid: 1 cloud(s), 1 command(s)") {
		t.Errorf("check good config said %q", out.String())
	}

	out.Reset()
	errOut.Reset()
	if err := run(context.Background(), []string{"check", "--config", bad}, env, &out, &errOut); err == nil {
		t.Fatal("check accepted a bad config")
	}
	for _, want := range []string{bad + ":20: commands./ec2.clod: unknown key \"clod\"; did you mean \"cloud\"?", bad + ":22: commands./ec2.allow.users[0]: unknown group \"opz\""} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("check output does not contain %q:\n%s", want, errOut.String())
		}
	}
	if strings.Contains(errOut.String()+out.String(), "s3cret-value-never-printed") {
		t.Error("check printed the signing secret")
	}
}

func TestVersionAndManifest(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, getenv(nil), &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "switchboard ") {
		t.Errorf("version: %v %q", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"slack-manifest", "--url", "https://chatops.example.com"}, getenv(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var manifest map[string]any
	if err := json.Unmarshal(out.Bytes(), &manifest); err != nil {
		t.Fatalf("manifest is not JSON: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "https://chatops.example.com/slack/commands") || !strings.Contains(out.String(), `"/ec2"`) {
		t.Errorf("manifest lacks the /ec2 command URL:\n%s", out.String())
	}
	// Every command of the built-in config, with what it does in users' words.
	for _, want := range []string{
		`"description": "Start, stop, reboot, check or list instances: tools, web, dev"`,
		`"command": "/restart"`, `"description": "Restart an instance (stop, then start) once another ops person approves"`,
		`"usage_hint": "<instance> (tools, or an instance id)"`,
		`"command": "/deploy"`, `"usage_hint": "<branch, ticket or #PR> | list | pin <branch> [for 4h] | unpin <branch> | terminate <branch|all>"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("manifest lacks %s:\n%s", want, out.String())
		}
	}
	if err := run(context.Background(), []string{"frobnicate"}, getenv(nil), io.Discard, io.Discard); err == nil {
		t.Error("an unknown subcommand was accepted")
	}
}

// The manifest comes before the Slack app, so before its secrets: a config
// whose secrets are not set yet (or set empty with ${VAR:-}) still prints it.
func TestManifestWithoutSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "switchboard.yaml")
	yaml := fillConfig(configYAML, "127.0.0.1:8080", dir, "sqlite://"+dir+"/sb.db", "http://127.0.0.1:9/api/", "1s")
	yaml = strings.Replace(yaml, "bot_token: xoxb-e2e-test", "bot_token: ${SLACK_BOT_TOKEN:-}\n  app_token: ${file:"+dir+"/no-such-secret}", 1)
	yaml += `workflows:
  restart:
    trigger: { command: /restart }
    allow: { users: [group:ops] }
    steps:
      - approval: { text: "restart?", approvers: [group:ops] }
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// The signing secret allowed to be empty, as the README's step 1 may write it.
	emptyOK := filepath.Join(dir, "empty-ok.yaml")
	if err := os.WriteFile(emptyOK, []byte(strings.Replace(yaml, "${SLACK_SIGNING_SECRET}", "${SLACK_SIGNING_SECRET:-}", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		env  map[string]string
	}{{path, nil}, {path, map[string]string{"SLACK_SIGNING_SECRET": ""}}, {emptyOK, nil}} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{"slack-manifest", "--config", c.path, "--socket-mode"}, getenv(c.env), &out, &errOut); err != nil {
			t.Fatalf("slack-manifest of %s with %v: %v\n%s", c.path, c.env, err, errOut.String())
		}
		for _, want := range []string{`"command": "/ec2"`, `"command": "/restart"`, `"description": "Run the restart workflow (it asks for an approval first)"`, `"socket_mode_enabled": true`} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("manifest lacks %s:\n%s", want, out.String())
			}
		}
	}
	// serve still wants the secret.
	var errOut bytes.Buffer
	if err := run(context.Background(), []string{"check", "--config", path}, getenv(nil), io.Discard, &errOut); err == nil ||
		!strings.Contains(errOut.String(), "environment variable SLACK_SIGNING_SECRET is not set") {
		t.Errorf("check without the signing secret: %v\n%s", err, errOut.String())
	}
}

// The audit command prints what the server recorded, from another process,
// while the server runs.
func TestAuditCommand(t *testing.T) {
	t.Parallel()
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{})
	req, path := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "start tools")
	send(t, req)
	req2, _ := slashCommand(t, s, peer, "U0INTRUDER", "C0OPS", "stop tools")
	send(t, req2)
	peer.waitAnswers(t, path, 1)

	cmd := exec.Command(binary, "audit", "--config", s.config, "--since", "1h")
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("switchboard audit: %v\n%s", err, out)
	}
	for _, want := range []string{"request", "U0OPS1", "/ec2 start tools", "allowed", "U0INTRUDER", "refused", "action", "start i-0123456789abcdef0", "succeeded"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("audit output lacks %q:\n%s", want, out)
		}
	}

	// Filters narrow it, and the table fits the width it is given.
	cmd = exec.Command(binary, "audit", "--config", s.config, "--outcome", "refused", "--width", "80")
	cmd.Env = s.env
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("switchboard audit --outcome refused: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "U0INTRUDER") || strings.Contains(string(out), "U0OPS1") {
		t.Errorf("audit --outcome refused shows more or less than the refusal:\n%s", out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("a line of %d characters in an 80-column audit:\n%s", n, out)
		}
	}

	// --json has every field whole, newest first.
	cmd = exec.Command(binary, "audit", "--config", s.config, "--json", "--actor", "U0OPS1")
	cmd.Env = s.env
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("switchboard audit --json: %v\n%s", err, out)
	}
	var last time.Time
	var runID string
	for i, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var ev struct {
			Time  time.Time `json:"time"`
			Actor string    `json:"actor"`
			RunID string    `json:"run_id"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("audit --json line %q: %v", l, err)
		}
		if ev.Actor != "U0OPS1" || (i > 0 && ev.Time.After(last)) {
			t.Errorf("audit --json --actor U0OPS1 is not U0OPS1's lines newest first:\n%s", out)
		}
		last = ev.Time
		if ev.RunID != "" {
			runID = ev.RunID
		}
	}
	if len(runID) < 20 {
		t.Errorf("audit --json does not carry whole run ids:\n%s", out)
	}
}

// Run where there is no database, audit says where it looked and how to
// point it elsewhere, fails, and creates nothing.
func TestAuditWithoutDatabase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(binary, "audit")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("audit without a database succeeded:\n%s", out)
	}
	want := "switchboard audit: there is no database at " + filepath.Join(dir, "data", "switchboard.db") + " (store sqlite://./data/switchboard.db of the built-in config): run it where serve runs, or pass --config FILE (its store:) or --data-dir DIR (for the built-in config)\n"
	if string(out) != want {
		t.Errorf("audit without a database said\n%s\nwant\n%s", out, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("audit left %v behind in %s", entries, dir)
	}
}

func TestAuditTableFitsWidth(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 2, 9, 15, 41, 0, time.UTC)
	evs := []switchboard.AuditEvent{
		{Time: at, Kind: "run", Actor: "U0OPS1", Channel: "C0OPS", Subject: "restart", Outcome: "failed", RunID: "r-019ade5c0a1xk2m3n4p5q6r7s8t",
			Detail: "stop i-0123456789abcdef0: InvalidInstanceID.Malformed: Invalid id: \"tools\" (expecting \"i-...\")\n(the request id is 4f1c2a)"},
		{Time: at, Kind: "request", Actor: "U0OTHER", Subject: "/ec2 start tools with a very long subject that goes on", Outcome: "refused"},
	}
	for _, width := range []int{160, 100, 80, 60} {
		var b strings.Builder
		if err := writeAuditTable(&b, evs, width, time.UTC); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if n := utf8.RuneCountInString(l); n > width {
				t.Errorf("width %d: a line of %d characters:\n%s", width, n, out)
			}
		}
		// Every word of the detail is there, in order; only a word longer
		// than the column is broken.
		if got := strings.Join(strings.Fields(out), " "); !strings.Contains(got, "InvalidInstanceID.Malformed: Invalid id:") || !strings.Contains(got, "(the request id is 4f1c2a)") {
			t.Errorf("width %d: the detail is not all there:\n%s", width, out)
		}
		for _, want := range []string{"12-02 09:15:41", "U0OTHER", "/ec2 start"} {
			if !strings.Contains(out, want) {
				t.Errorf("width %d: no %q in\n%s", width, want, out)
			}
		}
	}
	var b strings.Builder
	if err := writeAuditTable(&b, evs, 0, time.UTC); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(b.String(), "\n"); lines != 3 || !strings.Contains(b.String(), "r-019ade5c0a1xk2m3n4p5q6r7s8t") || !strings.Contains(b.String(), "with a very long subject that goes on") {
		t.Errorf("width 0 is not one whole row a line:\n%s", b.String())
	}
}

// Slack retries an event delivery until it gets a 200; the second delivery
// of the same event_id is recognised as a duplicate.
func TestEventsDeduplicated(t *testing.T) {
	t.Parallel()
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{})

	challenge := `{"type":"url_verification","token":"x","challenge":"c-123"}`
	req, _ := http.NewRequest(http.MethodPost, s.url("/slack/events"), strings.NewReader(challenge))
	sign(req, challenge, time.Now())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "c-123") {
		t.Errorf("url_verification answered %d %q", resp.StatusCode, body)
	}

	event := `{"type":"event_callback","team_id":"T1","event_id":"Ev0DUP1","event_time":1700000000,"event":{"type":"app_mention","user":"U0OPS1","text":"hi","channel":"C0OPS","ts":"1.1"}}`
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodPost, s.url("/slack/events"), strings.NewReader(event))
		sign(req, event, time.Now())
		req.Header.Set("Content-Type", "application/json")
		if i == 1 {
			req.Header.Set("X-Slack-Retry-Num", "1")
			req.Header.Set("X-Slack-Retry-Reason", "http_timeout")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("delivery %d answered %d, want 200", i+1, resp.StatusCode)
		}
	}
	resp, err = http.Get(s.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `switchboard_requests_total{outcome="duplicate",source="slack"} 1`) {
		t.Errorf("metrics do not count one duplicate delivery:\n%s", grepLines(string(metrics), "switchboard_requests_total"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// switchboard check refuses a workflow with an unknown step, a type error in
// an expression or a reference to an output no earlier step has, each with
// FILE:LINE and the key.
func TestCheckWorkflows(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := `clouds:
  main: { provider: sim }
hooks:
  h: { secret: s }
workflows:
  w:
    trigger: { webhook: h }
    channel: C1
    steps:
      - id: mail
        extract: { from: '{{ event.body }}', pattern: '(?P<instance>i-[0-9a-f]+)' }
`
	cases := []struct {
		name, steps string
		want        []string
	}{
		{"unknown step", "      - restart: { instance: i-0123456789abcdef0 }\n",
			[]string{":12: workflows.w.steps[1].restart: unknown step type \"restart\""}},
		{"type error", "      - if: 'steps.mail.instance + 1 > 2'\n        notify: { text: hi }\n",
			[]string{":12: workflows.w.steps[1].notify: if: invalid operation: + (mismatched types string and int)"}},
		{"undefined output", "      - notify: { text: 'stopping {{ steps.mail.id }}' }\n      - notify: { text: '{{ steps.later.x }}' }\n      - id: later\n        set: { x: y }\n",
			[]string{":12: workflows.w.steps[1].notify: text: steps.mail has no output id (its outputs: instance)",
				":13: workflows.w.steps[2].notify: text: steps.later: no step with that id comes before this one (steps before: mail)"}},
	}
	for _, c := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".yaml")
		if err := os.WriteFile(path, []byte(base+c.steps), 0o600); err != nil {
			t.Fatal(err)
		}
		var errOut bytes.Buffer
		if err := run(context.Background(), []string{"check", "--config", path}, getenv(nil), io.Discard, &errOut); err == nil {
			t.Errorf("%s: check accepted it", c.name)
		}
		for _, want := range c.want {
			if !strings.Contains(errOut.String(), path+want) {
				t.Errorf("%s: check output lacks %q:\n%s", c.name, path+want, errOut.String())
			}
		}
	}
}

// The console opens on a user and a channel the first command allows, as
// the README's walk-through says (U0OPS1 in C0OPS).
func TestPlaygroundPickersFollowTheConfig(t *testing.T) {
	t.Parallel()
	cfg, _, err := loadConfig("", t.TempDir(), getenv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	users, channels := playgroundPickers(cfg)
	if strings.Join(users, " ") != "U0OPS1 U0OPS2 U0DEV1" || strings.Join(channels, " ") != "C0OPS C0DEV" {
		t.Errorf("pickers: users %v, channels %v; want U0OPS1 first and C0OPS first", users, channels)
	}
}

func TestBanner(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		addr  string
		token bool
		query string
		want  string
	}{
		{"127.0.0.1:8080", false, "?token=T0KEN", "Switchboard is running. Open http://127.0.0.1:8080/?token=T0KEN to try it (try /ec2 status in the playground)."},
		{"127.0.0.1:8080", true, "", "Switchboard is running. Open http://127.0.0.1:8080/ to try it (try /ec2 status in the playground)."},
		{"[::]:8082", false, "", "Switchboard is running on [::]:8082. The console is off: it listens beyond loopback without console.admin_token (set one, or listen on 127.0.0.1). Slack requests go to /slack/commands."},
		{"0.0.0.0:8082", true, "", "Switchboard is running on 0.0.0.0:8082. Open http://localhost:8082/ and log in with console.admin_token to try it."},
		{"10.0.0.5:8082", true, "", "Switchboard is running on 10.0.0.5:8082. Open http://10.0.0.5:8082/ and log in with console.admin_token to try it."},
	} {
		addr, err := net.ResolveTCPAddr("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := banner(addr, c.token, c.query); got != c.want {
			t.Errorf("banner(%s, token %v) = %q, want %q", c.addr, c.token, got, c.want)
		}
	}
}
