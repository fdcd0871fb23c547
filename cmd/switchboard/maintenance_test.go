package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/aws"
	"github.com/switchboardhq/switchboard/testenv"
)

// maintenanceConfig is examples/maintenance.yaml pointed at the test's
// Dovecot, Slack peer and a quick simulated cloud.
func maintenanceConfig(t *testing.T, mail testenv.MailAccount, timeout, onTimeout string) string {
	t.Helper()
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "maintenance.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(example)
	for old, new := range map[string]string{
		"listen: 127.0.0.1:8080":        "listen: {{listen}}\ndata_dir: {{data_dir}}\nstore: {{store}}",
		"bot_token: ${SLACK_BOT_TOKEN}": "bot_token: xoxb-e2e\n  api_url: {{api_url}}\n  response_url_hosts: [\"{{slack_origin}}\"]",
		"provider: sim          # provider: aws, region: us-east-1 for the real thing": "provider: sim\n    sim: { pending_duration: 300ms, stopping_duration: 300ms }",
		"addr: imap.example.com:993":        "addr: " + mail.Addr + "\n    tls: plain",
		"username: aws-notices@example.com": "username: " + mail.User,
		"password: ${IMAP_PASSWORD}":        "password: " + mail.Password,
		"poll: 30s":                         "poll: 1s",
		"timeout: 30m":                      "timeout: " + timeout,
		"on_timeout: deny":                  "on_timeout: " + onTimeout,
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("examples/maintenance.yaml no longer has %q", old)
		}
		cfg = strings.Replace(cfg, old, new, 1)
	}
	return cfg
}

const retirementMail = "From: no-reply-aws@amazon.com\r\nTo: aws-notices@example.com\r\nSubject: [Retirement Notification] Amazon EC2 Instance scheduled for retirement\r\n" +
	"Message-ID: <retire-%s@amazon.com>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
	"Dear Amazon EC2 Customer,\r\n\r\nOne or more of your Amazon EC2 instances in the us-east-1 region is scheduled for retirement:\r\n\r\ni-0123456789abcdef0\r\n"

// posted waits until chat.postMessage got a text containing want, and
// returns that call.
func (p *slackPeer) posted(t *testing.T, want string) url.Values {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		p.mu.Lock()
		for _, form := range p.posts {
			if strings.Contains(form.Get("text"), want) {
				p.mu.Unlock()
				return form
			}
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			p.mu.Lock()
			defer p.mu.Unlock()
			var texts []string
			for _, f := range p.posts {
				texts = append(texts, f.Get("text"))
			}
			t.Fatalf("no chat.postMessage with %q; got %q", want, texts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *slackPeer) postCount(want string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, form := range p.posts {
		if strings.Contains(form.Get("text"), want) {
			n++
		}
	}
	return n
}

var approvalValue = regexp.MustCompile(`"value":"([^"]+)"`)

// click sends a signed block_actions interaction for an approval button as
// user, and returns the path its response_url answers land on.
func click(t *testing.T, s *server, peer *slackPeer, approvalID, user, action string) string {
	t.Helper()
	path := fmt.Sprintf("/actions/T1/%d", triggerSeq.Add(1))
	clickTo(t, s, peer.URL+path, approvalID, user, action)
	return path
}

// clickTo presses a button with its answers going to responseURL.
func clickTo(t *testing.T, s *server, responseURL, approvalID, user, action string) {
	t.Helper()
	seq := triggerSeq.Add(1)
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "trigger_id": fmt.Sprintf("click.%d.%d", time.Now().UnixNano(), seq),
		"user": map[string]any{"id": user}, "channel": map[string]any{"id": "C0OPS"}, "team": map[string]any{"id": "T1"},
		"response_url": responseURL,
		"actions":      []map[string]any{{"action_id": action, "block_id": "approval:" + approvalID, "value": approvalID, "type": "button"}},
	})
	body := url.Values{"payload": {string(payload)}}.Encode()
	req, _ := http.NewRequest(http.MethodPost, s.url("/slack/interactions"), strings.NewReader(body))
	sign(req, body, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("interaction answered %d", resp.StatusCode)
	}
}

func simCounts(t *testing.T, dataDir, name string) (starts, stops int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dataDir, "sim-main-*.json"))
	if len(files) != 1 {
		t.Fatalf("sim state files: %v", files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Instances []struct {
			Name          string `json:"name"`
			Starts, Stops int
		} `json:"instances"`
	}
	if err := json.Unmarshal(raw, &state); err != nil {
		t.Fatal(err)
	}
	for _, in := range state.Instances {
		if in.Name == name {
			return in.Starts, in.Stops
		}
	}
	t.Fatalf("no instance %s in the sim", name)
	return 0, 0
}

// The maintenance story end to end: a retirement mail arrives in a real
// IMAP mailbox; the channel is told with the instance's Name and asked for
// approval; a click from outside ops changes nothing; ops approves through a
// signed interaction; the instance is stopped and started; the channel reads
// "done"; the same mail again starts nothing; a restart while waiting for
// the approval loses nothing.
func TestMaintenanceStoryApproved(t *testing.T) {
	t.Parallel()
	mail := testenv.Dovecot(t)
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{config: maintenanceConfig(t, mail, "5m", "deny")})

	mail.Deliver(t, []byte(fmt.Sprintf(retirementMail, "1")))
	notice := peer.posted(t, "[Retirement Notification]")
	if !strings.Contains(notice.Get("text"), "Instance: tools (i-0123456789abcdef0)") || notice.Get("channel") != "C0OPS" {
		t.Errorf("notice = %q in %s", notice.Get("text"), notice.Get("channel"))
	}
	ask := peer.posted(t, "Stop and start tools (i-0123456789abcdef0) now")
	m := approvalValue.FindStringSubmatch(ask.Get("blocks"))
	if m == nil {
		t.Fatalf("the approval request has no buttons: %q", ask.Get("blocks"))
	}
	approvalID := m[1]

	// Restarted while it waits for the approval: nothing is lost.
	s.kill9()
	s.start()

	refused := click(t, s, peer, approvalID, "U0INTRUDER", "approve")
	if got := peer.waitAnswers(t, refused, 1); !strings.Contains(got[0], "not one of the approvers") {
		t.Errorf("an outsider's click answered %q", got)
	}
	approved := click(t, s, peer, approvalID, "U0OPS1", "approve")
	if got := peer.waitAnswers(t, approved, 1); !strings.Contains(got[0], "Approved by <@U0OPS1>") {
		t.Errorf("the request was updated to %q", got)
	}
	// The channel hears at once that the approval goes on.
	peer.posted(t, "Approved by <@U0OPS1> — stopping tools (i-0123456789abcdef0)…")
	peer.posted(t, "done: tools (i-0123456789abcdef0) was stopped and started.")
	if starts, stops := simCounts(t, s.dataDir, "tools"); starts != 1 || stops != 1 {
		t.Errorf("tools was started %d and stopped %d times, want once each", starts, stops)
	}

	// A second click after the decision, and the same mail again, change
	// nothing.
	again := click(t, s, peer, approvalID, "U0OPS2", "approve")
	if got := peer.waitAnswers(t, again, 1); !strings.Contains(got[0], "already approved") {
		t.Errorf("a click after the decision answered %q", got)
	}
	mail.Deliver(t, []byte(fmt.Sprintf(retirementMail, "1")))
	time.Sleep(3 * time.Second) // three polls
	if n := peer.postCount("[Retirement Notification]"); n != 1 {
		t.Errorf("the same mail was announced %d times", n)
	}
}

func TestMaintenanceStoryDeniedAndTimedOut(t *testing.T) {
	t.Parallel()
	mail := testenv.Dovecot(t)
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{config: maintenanceConfig(t, mail, "3s", "deny")})

	mail.Deliver(t, []byte(fmt.Sprintf(retirementMail, "deny")))
	ask := peer.posted(t, "Stop and start tools")
	approvalID := approvalValue.FindStringSubmatch(ask.Get("blocks"))[1]
	denied := click(t, s, peer, approvalID, "U0OPS2", "deny")
	if got := peer.waitAnswers(t, denied, 1); !strings.Contains(got[0], "Denied by <@U0OPS2>") {
		t.Errorf("the request was updated to %q", got)
	}
	peer.posted(t, "Leaving tools as it is: denied.")

	// Nobody answers the next one: after the timeout it counts as denied.
	mail.Deliver(t, []byte(fmt.Sprintf(retirementMail, "timeout")))
	peer.posted(t, "Nobody answered")
	peer.posted(t, "Leaving tools as it is: timed out after 3s.")
	// The request itself says so in Slack, its buttons gone.
	waitFor(t, "the timed-out request to be updated", func() bool {
		peer.mu.Lock()
		defer peer.mu.Unlock()
		for _, u := range peer.updates {
			if strings.Contains(u.Get("text"), "Nobody answered in time at ") && strings.Contains(u.Get("text"), "it counts as denied.") {
				return true
			}
		}
		return false
	})
	if starts, stops := simCounts(t, s.dataDir, "tools"); starts != 0 || stops != 0 {
		t.Errorf("tools was started %d and stopped %d times, want never", starts, stops)
	}
}

// A step that fails (here: the mail names an instance the cloud does not
// have) runs on_error, which tells the channel, and the run is recorded as
// failed.
func TestMaintenanceStoryErrorPath(t *testing.T) {
	t.Parallel()
	mail := testenv.Dovecot(t)
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{config: maintenanceConfig(t, mail, "5m", "deny")})

	raw := strings.ReplaceAll(fmt.Sprintf(retirementMail, "error"), "i-0123456789abcdef0", "i-0badbadbadbadbad0")
	mail.Deliver(t, []byte(raw))
	failed := peer.posted(t, "Maintenance of i-0badbadbadbadbad0 failed:")
	if !strings.Contains(failed.Get("text"), "InvalidInstanceID.NotFound") {
		t.Errorf("the failure reads %q", failed.Get("text"))
	}
	cmd := exec.Command(binary, "audit", "--config", s.config, "--json")
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"subject":"maintenance","outcome":"failed"`) {
		t.Errorf("the run is not recorded as failed:\n%s", out)
	}
}

// The same story on AWS: a real moto server instead of the simulated cloud.
func TestMaintenanceStoryOnMoto(t *testing.T) {
	t.Parallel()
	endpoint, region := testenv.Moto(t)
	mail := testenv.Dovecot(t)
	peer := newSlackPeer(t)

	ctx := t.Context()
	cloud, err := aws.New(ctx, aws.Options{Region: region, Endpoint: endpoint, AccessKeyID: "testing", AccessKeySecret: "testing"})
	if err != nil {
		t.Fatal(err)
	}
	insts, err := cloud.RunInstances(ctx, switchboard.LaunchSpec{ImageID: "ami-12c6146b", Tags: map[string]string{"Name": "tools", "env": "prod"}})
	if err != nil {
		t.Fatal(err)
	}
	id := insts[0].ID

	cfg := maintenanceConfig(t, mail, "5m", "deny")
	sim := "    provider: sim\n    sim: { pending_duration: 300ms, stopping_duration: 300ms }\n    instances:\n      - { id: i-0123456789abcdef0, name: tools, state: running, tags: { env: prod } }\n"
	if !strings.Contains(cfg, sim) {
		t.Fatalf("the example's cloud changed:\n%s", cfg)
	}
	cfg = strings.Replace(cfg, sim, fmt.Sprintf("    provider: aws\n    region: %s\n    endpoint: %s\n    access_key_id: testing\n    access_key_secret: testing\n", region, endpoint), 1)
	s := startServer(t, peer.URL, serverOptions{config: cfg})

	mail.Deliver(t, []byte(strings.ReplaceAll(fmt.Sprintf(retirementMail, "moto"), "i-0123456789abcdef0", id)))
	peer.posted(t, "Instance: tools ("+id+")")
	ask := peer.posted(t, "Stop and start tools ("+id+") now")
	approvalID := approvalValue.FindStringSubmatch(ask.Get("blocks"))[1]
	approved := click(t, s, peer, approvalID, "U0OPS2", "approve")
	peer.waitAnswers(t, approved, 1)
	peer.posted(t, "done: tools ("+id+") was stopped and started.")
	now, err := cloud.DescribeInstances(ctx, switchboard.Filter{IDs: []string{id}})
	if err != nil || len(now) != 1 || now[0].State != switchboard.StateRunning {
		t.Errorf("after the story the instance is %+v (%v), want running", now, err)
	}
}
