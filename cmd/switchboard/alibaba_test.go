package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/alibaba/ecstest"
)

const alibabaConfig = `listen: {{listen}}
data_dir: {{data_dir}}
store: {{store}}
slack:
  signing_secret: ${SLACK_SIGNING_SECRET}
  api_url: {{api_url}}
  response_url_hosts: ["{{slack_origin}}"]   # the fake Slack, on loopback over http
clouds:
  china:
    provider: alibaba
    region: cn-hangzhou
    endpoint: %s
    access_key_id: LTAI-switchboard-test
    access_key_secret: test-secret
groups:
  ops: [U0OPS1]
commands:
  /ecs:
    cloud: china
    allow: { users: [group:ops] }
    instances:
      api: { id: i-bp1g6zv0ce8oghu7k5p3 }
      batch: { tags: { role: batch } }
`

// /ecs start i-bp1... on Alibaba Cloud (a local server that answers ECS RPC
// requests as the API reference shows them) works as /ec2 does on AWS.
func TestSlashCommandsOnAlibaba(t *testing.T) {
	t.Parallel()
	ecs := ecstest.NewServer(ecstest.Options{
		AccessKeys: map[string]string{"LTAI-switchboard-test": "test-secret"},
		Instances: []ecstest.Instance{
			{ID: "i-bp1g6zv0ce8oghu7k5p3", Name: "api", Status: ecstest.StatusStopped},
			{ID: "i-bp1aaaaaaaaaaaaaaaa1", Name: "batch-1", Status: ecstest.StatusRunning, Tags: map[string]string{"role": "batch"}},
			{ID: "i-bp1aaaaaaaaaaaaaaaa2", Name: "batch-2", Status: ecstest.StatusRunning, Tags: map[string]string{"role": "batch"}},
		},
	})
	t.Cleanup(ecs.Close)
	ecs.RefuseInstance("i-bp1aaaaaaaaaaaaaaaa2", "IncorrectInstanceStatus")

	peer := newSlackPeer(t)
	config := strings.Replace(fmt.Sprintf(alibabaConfig, ecs.URL), "/ec2", "/ecs", -1)
	s := startServer(t, peer.URL, serverOptions{config: config})

	steps := []struct{ text, answer string }{
		{"start i-bp1g6zv0ce8oghu7k5p3", "api (i-bp1g6zv0ce8oghu7k5p3) is now running"},
		{"start api", "api (i-bp1g6zv0ce8oghu7k5p3) is already running"},
		// One instance of the batch refuses: the other still stops, and the
		// answer says which failed and why.
		{"stop batch", "batch-1 (i-bp1aaaaaaaaaaaaaaaa1) is now stopped."},
		{"status batch", "batch-1 (i-bp1aaaaaaaaaaaaaaaa1) is stopped."},
	}
	for _, step := range steps {
		req, path := slashCommandAs(t, s, peer, "/ecs", "U0OPS1", "C0OPS", step.text)
		if status, ack := send(t, req); status != 200 {
			t.Fatalf("/ecs %s: ack %d %q", step.text, status, ack)
		}
		got := peer.waitAnswers(t, path, 1)
		if len(got) != 1 || !strings.Contains(got[0], step.answer) {
			t.Errorf("/ecs %s answered %q, want it to contain %q", step.text, got, step.answer)
		}
		if step.text == "stop batch" && !strings.Contains(got[0], "Could not stop batch-2 (i-bp1aaaaaaaaaaaaaaaa2)") {
			t.Errorf("/ecs stop batch does not report the refused instance: %q", got)
		}
	}
}
