package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

const webhookConfig = slackHeader + `clouds:
  main: { provider: sim }
hooks:
  deploy: { secret: hook-secret-123 }
workflows:
  deployed:
    trigger: { webhook: deploy }
    channel: C0DEPLOY
    steps:
      - notify: { text: 'Deployed {{ event.data.ref }}' }
      - notify: { text: 'by {{ event.data.pusher }}', thread: true }
`

// A signed webhook starts its workflow once per delivery; a bad signature
// starts nothing; a notify with thread: true replies in the thread of the
// run's first message.
func TestWebhookWorkflow(t *testing.T) {
	t.Parallel()
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{config: webhookConfig})

	post := func(body, secret, delivery string) (int, []string) {
		t.Helper()
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(body))
		req, _ := http.NewRequest(http.MethodPost, s.url("/hooks/deploy"), strings.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		req.Header.Set("X-GitHub-Delivery", delivery)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out struct {
			Runs []string `json:"runs"`
		}
		_ = json.Unmarshal(raw, &out)
		return resp.StatusCode, out.Runs
	}
	body := `{"ref":"refs/heads/feature-42","pusher":"ana"}`
	if status, _ := post(body, "wrong-secret", "d-1"); status != 401 {
		t.Errorf("a bad signature got %d, want 401", status)
	}
	status, first := post(body, "hook-secret-123", "d-1")
	if status != 200 || len(first) != 1 {
		t.Fatalf("webhook answered %d %v", status, first)
	}
	if _, again := post(body, "hook-secret-123", "d-1"); len(again) != 1 || again[0] != first[0] {
		t.Errorf("the same delivery started %v, want the first run %v", again, first)
	}
	// A captured call replayed under a new delivery id: the signature still
	// holds (it covers only the body), and nothing new starts.
	if _, replay := post(body, "hook-secret-123", "d-2-replayed"); len(replay) != 1 || replay[0] != first[0] {
		t.Errorf("a replay under a new delivery id started %v, want the first run %v", replay, first)
	}
	announce := peer.posted(t, "Deployed refs/heads/feature-42")
	reply := peer.posted(t, "by ana")
	if announce.Get("channel") != "C0DEPLOY" || reply.Get("thread_ts") != announce.Get("ts") {
		t.Errorf("announce in %q, reply thread_ts %q; want C0DEPLOY and the announce's ts", announce.Get("channel"), reply.Get("thread_ts"))
	}
	if n := peer.postCount("Deployed"); n != 1 {
		t.Errorf("announced %d times", n)
	}
}

const workflowPolicyConfig = slackHeader + `clouds:
  main:
    provider: sim
    sim: { stopping_duration: 200ms }
    instances:
      - { id: i-0fedcba9876543210, name: web-1, state: running, tags: { env: prod } }
groups:
  ops: [U0OPS1, U0OPS2]
hooks:
  drain: { secret: hook-secret-123 }
workflows:
  drain:
    trigger: { webhook: drain }
    channel: C0OPS
    policy:
      - if: 'action == "stop" && instance.tags.env == "prod"'
        approval: { approvers: [group:ops] }
    steps:
      - stop: { instance: '{{ event.data.instance }}', wait: 30s }
      - notify: { text: 'drained {{ event.data.instance }}' }
`

// A workflow's policy gates its steps as a command's gates its actions:
// stopping a prod instance waits for an approval from ops.
func TestWorkflowPolicy(t *testing.T) {
	t.Parallel()
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{config: workflowPolicyConfig})
	body := `{"instance":"i-0fedcba9876543210"}`
	mac := hmac.New(sha256.New, []byte("hook-secret-123"))
	mac.Write([]byte(body))
	req, _ := http.NewRequest(http.MethodPost, s.url("/hooks/drain"), strings.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	ask := peer.posted(t, "Workflow drain wants to stop web-1 (i-0fedcba9876543210); its policy asks for an approval.")
	id := approvalValue.FindStringSubmatch(ask.Get("blocks"))[1]
	if n := peer.postCount("drained"); n != 0 {
		t.Fatalf("drained before the approval")
	}
	click(t, s, peer, id, "U0OPS2", "approve")
	peer.posted(t, "drained i-0fedcba9876543210")
	if _, stops := simCounts(t, s.dataDir, "web-1"); stops != 1 {
		t.Errorf("web-1 stopped %d times, want 1", stops)
	}
}
