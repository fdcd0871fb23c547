package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

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

// A burst of identical statuses costs the Alibaba account a handful of
// DescribeInstances calls, not one each: concurrent reads of the same cloud
// share one call (fleet.Options.ShareReads), as on EC2 (bench/burst.sh).
func TestBurstOfStatusesOnAlibabaSharesDescribes(t *testing.T) {
	t.Parallel()
	ecs := ecstest.NewServer(ecstest.Options{
		AccessKeys: map[string]string{"LTAI-switchboard-test": "test-secret"},
		Instances:  []ecstest.Instance{{ID: "i-bp1g6zv0ce8oghu7k5p3", Name: "api", Status: ecstest.StatusRunning}},
	})
	t.Cleanup(ecs.Close)
	peer := newSlackPeer(t)
	config := strings.Replace(fmt.Sprintf(alibabaConfig, ecs.URL), "/ec2", "/ecs", -1)
	s := startServer(t, peer.URL, serverOptions{config: config})

	const n = 200
	reqs := make([]*http.Request, n)
	paths := make([]string, n)
	for i := range reqs {
		// A channel each, as slackload does: the per-channel posting pace is
		// not what this measures.
		reqs[i], paths[i] = slashCommandAs(t, s, peer, "/ecs", "U0OPS1", fmt.Sprint("C0BURST", i), "status api")
	}
	before := len(ecs.CallsTo("DescribeInstances"))
	errs := make(chan error, n)
	for _, req := range reqs {
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("ack %d", resp.StatusCode)
				}
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// The last path waited for (a little longer, for duplicates) after the
	// others all have one.
	deadline := time.Now().Add(30 * time.Second)
	for _, path := range paths[:n-1] {
		for len(peer.answers(path)) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	peer.waitAnswers(t, paths[n-1], 1)
	for _, path := range paths {
		if got := peer.answers(path); len(got) != 1 || !strings.Contains(got[0], "api (i-bp1g6zv0ce8oghu7k5p3) is running") {
			t.Fatalf("answered %q at %s, want the status once", got, path)
		}
	}
	calls := len(ecs.CallsTo("DescribeInstances")) - before
	t.Logf("%d statuses: %d DescribeInstances calls", n, calls)
	// Without sharing it is one each; the bound leaves room for a slow machine
	// spreading the burst over several sharing windows.
	if calls > 20 {
		t.Errorf("%d DescribeInstances calls for %d identical statuses, want a handful", calls, n)
	}
}
