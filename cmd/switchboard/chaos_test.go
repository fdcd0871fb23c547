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

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/aws"
	"github.com/switchboardhq/switchboard/testenv"
)

// chaosConfig is a fleet of six instances, each with an alias, so runs on
// different instances proceed in parallel and runs on one instance queue
// behind its lock.
const chaosConfig = slackHeader + `clouds:
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

// The chaos test across replicas: two processes on one Postgres and one
// cloud (moto), each killed at random moments and restarted, commands and
// approval clicks spread over both; every acked command is answered exactly
// once.
func TestChaosAcrossReplicas(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	endpoint, region := testenv.Moto(t)
	cloud, err := aws.New(t.Context(), aws.Options{Region: region, Endpoint: endpoint, AccessKeyID: "testing", AccessKeySecret: "testing"})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		tags := map[string]string{"Name": name}
		if name == "e" || name == "f" {
			tags["role"] = "db"
		}
		insts, err := cloud.RunInstances(t.Context(), switchboard.LaunchSpec{ImageID: "ami-12c6146b", Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = insts[0].ID
		if name == "a" || name == "c" || name == "e" {
			if _, err := cloud.StopInstances(t.Context(), []string{insts[0].ID}, switchboard.StopOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := strings.Replace(chaosConfig, `    provider: sim
    sim: { pending_duration: 400ms, stopping_duration: 300ms, throttle: false }
    instances:
      - { id: i-0000000000000000a, name: a, state: stopped }
      - { id: i-0000000000000000b, name: b, state: running }
      - { id: i-0000000000000000c, name: c, state: stopped }
      - { id: i-0000000000000000d, name: d, state: running }
      - { id: i-0000000000000000e, name: e, state: stopped, tags: { role: db } }
      - { id: i-0000000000000000f, name: f, state: running, tags: { role: db } }
`, fmt.Sprintf(`    provider: aws
    region: %s
    endpoint: %s
    access_key_id: testing
    access_key_secret: testing
`, region, endpoint), 1)
	for name, id := range ids {
		cfg = strings.Replace(cfg, "i-0000000000000000"+name, id, 1)
	}
	if !strings.Contains(cfg, "provider: aws") {
		t.Fatal("the chaos config's cloud section changed; update this test")
	}
	peer := newSlackPeer(t)
	a := startServer(t, peer.URL, serverOptions{config: cfg, store: pg})
	b := startServer(t, peer.URL, serverOptions{config: cfg, store: pg})
	chaosLoad(t, peer, []*server{a, b})
}

// chaos runs the chaos test against a store ("" for SQLite in the data
// dir), with one process and the simulated cloud, whose counts of starts
// and stops are checked against what the channel was told.
func chaos(t *testing.T, store string) {
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{config: chaosConfig, store: store})
	told := chaosLoad(t, peer, []*server{s})

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
}

// chaosLoad sends the burst to the replicas (a random live one each time),
// kills a random replica with SIGKILL and restarts it, again and again,
// clicks Approve through whichever replica is up, then checks that every
// acked command was answered exactly once. It returns how often the channel
// was told that each instance started or stopped ("a started": 2).
func chaosLoad(t *testing.T, peer *slackPeer, replicas []*server) map[string]int {
	const (
		commands = 36
		kills    = 5
	)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(uint64(seed), 7))
	stopClicking := approveAll(t, replicas, peer, "U0OPS2")
	defer stopClicking()

	var paths []string
	sent := 0
	send := func(n int) {
		for ; n > 0 && sent < commands; n-- {
			s := replicas[rnd.IntN(len(replicas))]
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
		s := replicas[rnd.IntN(len(replicas))]
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
		// At most one "waiting for a lock", one "asks for an approval", one
		// "Approved by" and one "I'll keep trying", none twice.
		if len(answers) != 1 || len(notices) > 4 || len(slices.Compact(slices.Sorted(slices.Values(notices)))) != len(notices) {
			t.Errorf("command at %s answered %d times (and %d notices): %q %q", p, len(answers), len(notices), answers, notices)
			for _, r := range replicas {
				for _, line := range strings.Split(r.logs.String(), "\n") {
					if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
						t.Log(line)
					}
				}
			}
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

	t.Logf("%d commands acked across %d kills of %d replica(s); %s", len(paths), kills, len(replicas), fmt.Sprint(told))
	return told
}

// isNotice tells a run's notices (waiting for a lock, asking for an
// approval, going on after it, retrying a step that failed on the way: a
// process killed under it can leave the store briefly in the way) from its
// one answer.
func isNotice(text string) bool {
	return strings.HasPrefix(text, "Another run (") || strings.Contains(text, "asks for an approval") || strings.HasPrefix(text, "Approved by ") ||
		strings.Contains(text, "I'll keep trying until")
}

// approveAll clicks Approve, as user, on every approval request the peer
// receives, again and again until the click is answered (the server may be
// down when it first tries), through each replica in turn. It stops when
// the returned func is called.
func approveAll(t *testing.T, replicas []*server, peer *slackPeer, user string) func() {
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
			for i, id := range ids {
				if tryClick(replicas[i%len(replicas)], peer, id, user) {
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

// The process dies after Slack took an answer and before it recorded that:
// after the restart the answer is found in the channel, not posted again.
func TestAnswerCutOffBeforeItsRecordIsNotRepeated(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var store string
			if backend == "postgres" {
				store = testenv.Postgres(t)
			}
			peer := newSlackPeer(t)
			s := startServer(t, peer.URL, serverOptions{store: store})
			path := statusWhileAnswering(t, s, peer, s.kill9)
			s.start()
			time.Sleep(3 * time.Second) // the restarted process has looked, and would have posted by now
			if got := peer.answers(path); len(got) != 1 {
				t.Errorf("answered %d times across the kill: %q\n%s", len(got), got, s.logs)
			}
		})
	}
}

// The disk fills up the moment Slack takes an answer, so recording it
// fails: the record is retried, not the post, /readyz says not ready while
// the store cannot write, and once there is room again the answer stands,
// once.
func TestFullDiskAnswersOnceAndIsNotReady(t *testing.T) {
	t.Parallel()
	disk, fill, free := testenv.SmallDisk(t, "24m")
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{store: "sqlite://" + filepath.Join(disk, "switchboard.db")})
	readyz := func() int {
		resp, err := http.Get(s.url("/readyz"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitReadyz := func(want int, what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for readyz() != want {
			if time.Now().After(deadline) {
				t.Fatalf("/readyz did not answer %d %s within 20 s\n%s", want, what, s.logs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	path := statusWhileAnswering(t, s, peer, fill)
	waitReadyz(http.StatusServiceUnavailable, "with the disk full")
	// A command now cannot be recorded: Slack hears an error, not an ack
	// that would be lost.
	req2, _ := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "status tools")
	if code, text := send(t, req2); code == http.StatusOK && !strings.Contains(text, "went wrong") {
		t.Errorf("with the disk full a command was acked %d %q", code, text)
	}
	free()
	waitReadyz(http.StatusOK, "once there is room again")
	time.Sleep(2 * time.Second) // a repeated post would arrive now
	if got := peer.answers(path); len(got) != 1 {
		t.Errorf("answered %d times across the full disk: %q", len(got), got)
	}
	if !strings.Contains(s.logs.String(), "message delivered but not yet recorded") {
		t.Errorf("the failing record was not retried (or not logged):\n%s", s.logs)
	}
}

// statusWhileAnswering sends /ec2 status tools and calls do the moment
// the fake Slack has taken its answer, before Slack replies to the post;
// it returns once do has run, with the command's response_url path.
func statusWhileAnswering(t *testing.T, s *server, peer *slackPeer, do func()) string {
	t.Helper()
	done := make(chan struct{})
	peer.mu.Lock()
	peer.onAnswer = func(string) {
		peer.onAnswer = nil
		do()
		close(done)
	}
	peer.mu.Unlock()
	req, path := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "status tools")
	if code, _ := send(t, req); code != http.StatusOK {
		t.Fatalf("status answered %d", code)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("no answer was posted")
	}
	return path
}
