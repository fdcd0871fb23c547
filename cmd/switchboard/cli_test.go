package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	if err := run(context.Background(), []string{"frobnicate"}, getenv(nil), io.Discard, io.Discard); err == nil {
		t.Error("an unknown subcommand was accepted")
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
