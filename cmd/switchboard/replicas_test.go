package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

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
	// Kill both in turn: whichever led, the survivor (or the restarted one)
	// goes on ticking.
	before := len(ticks())
	a.kill9()
	waitTicks(before+2, "after killing one replica")
	mail.Deliver(t, []byte("From: a@example.com\r\nSubject: second\r\nMessage-ID: <m2@example.com>\r\n\r\nhello\r\n"))
	peer.posted(t, "mail second")
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
