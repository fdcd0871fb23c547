package main

import (
	"database/sql"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/aws"
	"github.com/switchboardhq/switchboard/testenv"
)

const replicaConfig = `listen: {{listen}}
data_dir: {{data_dir}}
store: %s
log: { level: warn }
slack:
  signing_secret: ${SLACK_SIGNING_SECRET}
  bot_token: xoxb-e2e
  api_url: {{api_url}}
  response_url_hosts: ["{{slack_origin}}"]   # the fake Slack, on loopback over http
clouds:
  main:
    provider: aws
    region: %s
    endpoint: %s
    access_key_id: testing
    access_key_secret: testing
groups:
  ops: [U0OPS1]
commands:
  /ec2:
    cloud: main
    allow: { users: [group:ops] }
    instances:
      tools: { id: %s }
mailboxes:
  notices:
    addr: %s
    tls: plain
    username: %s
    password: %s
    poll: 1s
workflows:
  mail:
    trigger: { mail: { mailbox: notices } }
    channel: C0MAIL
    steps:
      - notify: { text: 'mail {{ event.subject }}' }
  heartbeat:
    trigger: { schedule: { cron: '@every 2s' } }
    channel: C0BEAT
    steps:
      - notify: { text: 'tick {{ event.subject }}' }
`

var tickLine = regexp.MustCompile(`^tick scheduled run at (\S+)$`)

// Two replicas on one Postgres (and one cloud, here moto): both serve
// Slack, either one works any run, a schedule fires once per tick, one
// replica at a time reads the mailbox, and when one is killed the other takes
// the schedule and the mailbox over.
func TestTwoReplicasOnPostgres(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	endpoint, region := testenv.Moto(t)
	cloud, err := aws.New(t.Context(), aws.Options{Region: region, Endpoint: endpoint, AccessKeyID: "testing", AccessKeySecret: "testing"})
	if err != nil {
		t.Fatal(err)
	}
	insts, err := cloud.RunInstances(t.Context(), switchboard.LaunchSpec{ImageID: "ami-12c6146b", Tags: map[string]string{"Name": "tools"}})
	if err != nil {
		t.Fatal(err)
	}
	peer := newSlackPeer(t)
	mail := testenv.Dovecot(t)
	cfg := fmt.Sprintf(replicaConfig, pg, region, endpoint, insts[0].ID, mail.Addr, mail.User, mail.Password)
	a := startServer(t, peer.URL, serverOptions{config: cfg, store: pg})
	b := startServer(t, peer.URL, serverOptions{config: cfg, store: pg})

	// Both serve, and the work gets done whichever one took the command.
	for _, s := range []*server{a, b, a, b} {
		req, path := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "status tools")
		send(t, req)
		if got := peer.waitAnswers(t, path, 1); !strings.Contains(got[0], "tools ("+insts[0].ID+") is running") {
			t.Errorf("status via %s answered %q", s.addr, got)
		}
	}

	ticks := func() map[string]int {
		seen := map[string]int{}
		peer.mu.Lock()
		defer peer.mu.Unlock()
		for _, form := range peer.posts {
			if m := tickLine.FindStringSubmatch(form.Get("text")); m != nil {
				seen[m[1]]++
			}
		}
		return seen
	}
	waitTicks := func(n int, what string) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for len(ticks()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d ticks after 45s, want %d", what, len(ticks()), n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitTicks(3, "two replicas")
	// One replica at a time reads the mailbox (a lease); each mail is
	// handled once.
	mail.Deliver(t, []byte("From: a@example.com\r\nSubject: first\r\nMessage-ID: <m1@example.com>\r\n\r\nhello\r\n"))
	peer.posted(t, "mail first")
	// Kill the leader (the replica that enqueues the schedule's ticks): the
	// survivor takes its duties over, and the failover is measured.
	db, err := sql.Open("pgx", pg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var leaderID string
	if err := db.QueryRowContext(t.Context(), `SELECT leader_id FROM river_leader`).Scan(&leaderID); err != nil {
		t.Fatalf("who leads: %v", err)
	}
	leader := a
	if strings.HasSuffix(leaderID, "@"+b.addr) {
		leader = b
	}
	before := len(ticks())
	killedAt := time.Now()
	leader.kill9()
	waitTicks(before+1, "after killing the leader")
	scheduleFailover := time.Since(killedAt)
	waitTicks(before+2, "after killing the leader")
	mail.Deliver(t, []byte("From: a@example.com\r\nSubject: second\r\nMessage-ID: <m2@example.com>\r\n\r\nhello\r\n"))
	peer.posted(t, "mail second")
	t.Logf("the leader was killed; the survivor ticked %s later and handled a mail delivered then %s after the kill",
		scheduleFailover.Round(100*time.Millisecond), time.Since(killedAt).Round(100*time.Millisecond))
	for _, subject := range []string{"mail first", "mail second"} {
		if n := peer.postCount(subject); n != 1 {
			t.Errorf("%q was announced %d times", subject, n)
		}
	}
	for tick, n := range ticks() {
		if n != 1 {
			t.Errorf("tick %s fired %d times", tick, n)
		}
	}
}

const threeReplicaConfig = `listen: {{listen}}
data_dir: {{data_dir}}
store: {{store}}
log: { level: warn }
slack:
  signing_secret: ${SLACK_SIGNING_SECRET}
  bot_token: xoxb-e2e
  api_url: {{api_url}}
  response_url_hosts: ["{{slack_origin}}"]
clouds:
  main:
    provider: sim
    # Each call takes a while, as EC2's do, so that the replica killed
    # below dies with runs in its hands.
    sim: { throttle: false, latency: 1500ms }
    instances:
      - { id: i-0123456789abcdef0, name: tools, state: running }
groups:
  ops: [U0OPS1]
commands:
  /ec2:
    cloud: main
    allow: { users: [group:ops] }
    instances:
      tools: { id: i-0123456789abcdef0 }
`

// Three replicas on one Postgres take commands in turn while one is killed
// with SIGKILL (and never comes back) and another is restarted with
// SIGTERM: every acked command is answered exactly once, the dead
// replica's work within a bounded time of its death.
func TestReplicaDeathAndRollingRestart(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	peer := newSlackPeer(t)
	replicas := []*server{
		startServer(t, peer.URL, serverOptions{config: threeReplicaConfig, store: pg}),
		startServer(t, peer.URL, serverOptions{config: threeReplicaConfig, store: pg}),
		startServer(t, peer.URL, serverOptions{config: threeReplicaConfig, store: pg}),
	}
	var mu sync.Mutex
	down := map[*server]bool{}
	var acked []string
	ackedAt := map[string]time.Time{}
	var killedAt time.Time
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopLoad:
				return
			case <-tick.C:
			}
			// Spread over the replicas; one that is down is skipped, as a
			// load balancer would.
			for j := range replicas {
				s := replicas[(i+j)%len(replicas)]
				mu.Lock()
				isDown := down[s]
				mu.Unlock()
				if isDown {
					continue
				}
				req, path := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "status tools")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue // going down: never acked, Slack would show an error
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					acked = append(acked, path)
					ackedAt[path] = time.Now()
					mu.Unlock()
				}
				break
			}
		}
	}()

	time.Sleep(3 * time.Second)
	mu.Lock()
	down[replicas[1]] = true
	mu.Unlock()
	killedAt = time.Now()
	replicas[1].kill9()

	time.Sleep(2 * time.Second)
	mu.Lock()
	down[replicas[2]] = true
	mu.Unlock()
	replicas[2].stop()
	replicas[2].start()
	mu.Lock()
	down[replicas[2]] = false
	mu.Unlock()

	time.Sleep(3 * time.Second)
	close(stopLoad)
	<-loadDone

	mu.Lock()
	paths := append([]string(nil), acked...)
	mu.Unlock()
	deadline := killedAt.Add(60 * time.Second)
	var last time.Time
	for {
		missing := 0
		for _, p := range paths {
			if len(peer.answers(p)) == 0 {
				missing++
			}
		}
		if missing == 0 {
			last = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acked commands unanswered 60 s after a replica was killed", missing, len(paths))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a duplicate would arrive now
	for _, p := range paths {
		if got := peer.answers(p); len(got) != 1 || !strings.Contains(got[0], "tools (i-0123456789abcdef0) is running") {
			t.Errorf("command at %s answered %d times: %q", p, len(got), got)
		}
	}
	// Commands acked once the killed replica was gone, through the rolling
	// restart of another, wait for nobody: the restarted replica finished
	// or handed over its work.
	var slowest time.Duration
	mu.Lock()
	peer.mu.Lock()
	for _, p := range paths {
		if at := ackedAt[p]; at.After(killedAt.Add(time.Second)) {
			slowest = max(slowest, peer.firstAt[p].Sub(at))
		}
	}
	peer.mu.Unlock()
	mu.Unlock()
	t.Logf("%d commands acked by three replicas; one killed, one restarted; the last answer came %s after the kill; "+
		"acked after the kill, through the restart, the slowest answer took %s", len(paths),
		last.Sub(killedAt).Round(100*time.Millisecond), slowest.Round(100*time.Millisecond))
	if slowest > 15*time.Second {
		t.Errorf("a command acked after the kill waited %s for its answer: the restart held work back", slowest)
	}
}
