package main

import (
	"strings"
	"testing"
)

const policyConfig = `listen: {{listen}}
data_dir: {{data_dir}}
store: {{store}}
slack:
  signing_secret: ${SLACK_SIGNING_SECRET}
  api_url: {{api_url}}
  response_url_hosts: ["{{slack_origin}}"]   # the fake Slack, on loopback over http
clouds:
  main:
    provider: sim
    sim: { pending_duration: 200ms, stopping_duration: 200ms }
    instances:
      - { id: i-0123456789abcdef0, name: tools, state: running, tags: { env: dev } }
      - { id: i-0fedcba9876543210, name: web-1, state: running, tags: { env: prod, role: web } }
groups:
  ops: [U0OPS1, U0OPS2]
commands:
  /ec2:
    cloud: main
    allow: { users: [group:ops] }
    instances:
      tools: { id: i-0123456789abcdef0 }
      web: { tags: { role: web } }
    policy:
      - if: 'action == "stop" && instance.tags.env == "prod"'
        approval: { approvers: [group:ops], timeout: 5m }
      - if: 'action == "reboot"'
        deny: reboots are done by the on-call, not from chat
`

// Stopping an instance tagged env=prod waits for an approval from ops
// (not from the person who asked); dev does not; a deny rule refuses with
// its reason.
func TestPolicy(t *testing.T) {
	t.Parallel()
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{config: policyConfig})

	req, path := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "stop tools")
	send(t, req)
	if got := peer.waitAnswers(t, path, 1); got[0] != "tools (i-0123456789abcdef0) is now stopped." {
		t.Errorf("stop tools (dev) answered %q", got)
	}

	req, path = slashCommand(t, s, peer, "U0OPS1", "C0OPS", "reboot tools web")
	send(t, req)
	if got := peer.waitAnswers(t, path, 1); !strings.Contains(got[0], "Not rebooting web-1 (i-0fedcba9876543210): reboots are done by the on-call, not from chat") {
		t.Errorf("reboot answered %q", got)
	}

	req, path = slashCommand(t, s, peer, "U0OPS1", "C0OPS", "stop web")
	send(t, req)
	ask := peer.waitAnswers(t, path, 1)
	if !strings.Contains(ask[0], "<@U0OPS1> wants to stop web-1 (i-0fedcba9876543210); the policy of /ec2 asks for an approval.") {
		t.Fatalf("stop web (prod) answered %q", ask)
	}
	peer.mu.Lock()
	m := approvalValue.FindStringSubmatch(strings.Join(peer.raw[path], "\n"))
	peer.mu.Unlock()
	if m == nil {
		t.Fatal("the approval request has no buttons")
	}
	approvalID := m[1]
	self := click(t, s, peer, approvalID, "U0OPS1", "approve")
	if got := peer.waitAnswers(t, self, 1); !strings.Contains(got[0], "someone else has to approve it") {
		t.Errorf("the requester's own approval answered %q", got)
	}
	ok := click(t, s, peer, approvalID, "U0OPS2", "approve")
	if got := peer.waitAnswers(t, ok, 1); !strings.Contains(got[0], "Approved by <@U0OPS2>") {
		t.Errorf("the approval answered %q", got)
	}
	got := peer.waitAnswers(t, path, 3)
	if got[1] != "Approved by <@U0OPS2> — stopping web-1 (i-0fedcba9876543210)…" || got[2] != "web-1 (i-0fedcba9876543210) is now stopped." {
		t.Errorf("after the approval: %q", got)
	}
}
