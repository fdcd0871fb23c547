package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/testenv"
)

// chaosConfig is a fleet of six instances, each with an alias, so runs on
// different instances proceed in parallel and runs on one instance queue
// behind its lock.
const chaosConfig = `listen: {{listen}}
data_dir: {{data_dir}}
store: {{store}}
slack:
  signing_secret: ${SLACK_SIGNING_SECRET}
  bot_token: xoxb-e2e-test
  api_url: {{api_url}}
clouds:
  main:
    provider: sim
    sim: { pending_duration: 400ms, stopping_duration: 300ms, throttle: false }
    instances:
      - { id: i-0000000000000000a, name: a, state: stopped }
      - { id: i-0000000000000000b, name: b, state: running }
      - { id: i-0000000000000000c, name: c, state: stopped }
      - { id: i-0000000000000000d, name: d, state: running }
      - { id: i-0000000000000000e, name: e, state: stopped, tags: { role: db } }
      - { id: i-0000000000000000f, name: f, state: running, tags: { role: db } }
groups:
  ops: [U0OPS1, U0OPS2]
commands:
  /ec2:
    cloud: main
    allow: { users: [group:ops] }
    instances:
      a: { id: i-0000000000000000a }
      b: { id: i-0000000000000000b }
      c: { id: i-0000000000000000c }
      d: { id: i-0000000000000000d }
      e: { id: i-0000000000000000e }
      f: { id: i-0000000000000000f }
    policy:
      - if: 'action == "stop" && instance.tags.role == "db"'
        approval: { approvers: [U0OPS2], timeout: 10m }
`

// TestChaosKillsLoseNothing sends a burst of start, stop and status commands
// and kills the process with SIGKILL at random moments while they run
// (acked, parked on instance waits and on approvals, queued behind locks,
// mid-answer). Stopping e or f needs U0OPS2's approval, which a clicker
// gives as the requests appear, through the kills. After
// the last restart every command has been answered exactly once, and the
// cloud saw each start or stop take effect exactly as often as the channel
// was told it did.
func TestChaosKillsLoseNothing(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var store string
			if backend == "postgres" {
				store = testenv.Postgres(t)
			}
			chaos(t, store)
		})
	}
}

// chaos runs the chaos test against a store ("" for SQLite in the data
// dir).
func chaos(t *testing.T, store string) {
	const (
		commands = 36
		kills    = 5
	)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(uint64(seed), 7))

	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{config: chaosConfig, store: store})
	stopClicking := approveAll(t, s, peer, "U0OPS2")
	defer stopClicking()

	var paths []string
	sent := 0
	send := func(n int) {
		for ; n > 0 && sent < commands; n-- {
			alias := string(rune('a' + rnd.IntN(6)))
			text := []string{"start ", "stop ", "status "}[rnd.IntN(3)] + alias
			req, path := slashCommand(t, s, peer, "U0OPS1", "C0OPS", text)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// Killed under us: the command was never acked, so Slack
				// would have shown an error; it is not counted.
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				paths = append(paths, path)
			}
			sent++
		}
	}
	for range kills {
		send(commands / (kills + 1))
		time.Sleep(time.Duration(50+rnd.IntN(400)) * time.Millisecond)
		s.kill9()
		s.start()
	}
	send(commands)

	deadline := time.Now().Add(90 * time.Second)
	for {
		missing := 0
		for _, p := range paths {
			if got := peer.answers(p); len(got) == 0 || isNotice(got[len(got)-1]) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acked commands never answered", missing, len(paths))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // a duplicate would arrive now
	told := map[string]int{}
	for _, p := range paths {
		// A run queued behind another one on the same instance says so
		// once; then comes its one answer.
		var answers, notices []string
		for _, a := range peer.answers(p) {
			if isNotice(a) {
				notices = append(notices, a)
			} else {
				answers = append(answers, a)
			}
		}
		// At most one "waiting for a lock", one "asks for an approval" and
		// one "Approved by".
		if len(answers) != 1 || len(notices) > 3 || len(slices.Compact(slices.Sorted(slices.Values(notices)))) != len(notices) {
			t.Errorf("command at %s answered %d times (and %d notices): %q %q", p, len(answers), len(notices), answers, notices)
			continue
		}
		for _, line := range strings.Split(answers[0], "\n") {
			name := strings.Fields(line + " ?")[0]
			switch {
			case strings.Contains(line, "is now running"):
				told[name+" started"]++
			case strings.Contains(line, "is now stopped"):
				told[name+" stopped"]++
			}
		}
	}

	// What the cloud did, from the simulator's state file.
	files, _ := filepath.Glob(filepath.Join(s.dataDir, "sim-main-*.json"))
	if len(files) != 1 {
		t.Fatalf("sim state files: %v", files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Instances []struct {
			Name   string `json:"name"`
			Starts int    `json:"starts"`
			Stops  int    `json:"stops"`
		} `json:"instances"`
	}
	if err := json.Unmarshal(raw, &state); err != nil {
		t.Fatal(err)
	}
	for _, in := range state.Instances {
		if got, want := in.Starts, told[in.Name+" started"]; got != want {
			t.Errorf("%s was started %d times, but the channel was told %d times", in.Name, got, want)
		}
		if got, want := in.Stops, told[in.Name+" stopped"]; got != want {
			t.Errorf("%s was stopped %d times, but the channel was told %d times", in.Name, got, want)
		}
	}
	t.Logf("%d commands acked across %d kills; %s", len(paths), kills, fmt.Sprint(told))
}

// isNotice tells a run's notices (waiting for a lock, asking for an
// approval, going on after it) from its one answer.
func isNotice(text string) bool {
	return strings.HasPrefix(text, "Another run (") || strings.Contains(text, "asks for an approval") || strings.HasPrefix(text, "Approved by ")
}

// approveAll clicks Approve, as user, on every approval request the peer
// receives, again and again until the click is answered (the server may be
// down when it first tries). It stops when the returned func is called.
func approveAll(t *testing.T, s *server, peer *slackPeer, user string) func() {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		answered := map[string]bool{}
		for {
			select {
			case <-done:
				return
			case <-time.After(150 * time.Millisecond):
			}
			peer.mu.Lock()
			var ids []string
			for _, bodies := range peer.raw {
				for _, b := range bodies {
					if m := approvalValue.FindStringSubmatch(b); m != nil && !answered[m[1]] {
						ids = append(ids, m[1])
					}
				}
			}
			peer.mu.Unlock()
			for _, id := range ids {
				if tryClick(s, peer, id, user) {
					answered[id] = true
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// tryClick is click without failing the test when the server is down.
func tryClick(s *server, peer *slackPeer, approvalID, user string) bool {
	seq := triggerSeq.Add(1)
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "trigger_id": fmt.Sprintf("click.%d.%d", time.Now().UnixNano(), seq),
		"user": map[string]any{"id": user}, "channel": map[string]any{"id": "C0OPS"}, "team": map[string]any{"id": "T1"},
		"response_url": peer.URL + fmt.Sprintf("/actions/T1/%d", seq),
		"actions":      []map[string]any{{"action_id": "approve", "block_id": "approval:" + approvalID, "value": approvalID, "type": "button"}},
	})
	body := url.Values{"payload": {string(payload)}}.Encode()
	req, _ := http.NewRequest(http.MethodPost, s.url("/slack/interactions"), strings.NewReader(body))
	sign(req, body, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}
