package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/testenv"
)

func TestSlashCommandEndToEnd(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var opts serverOptions
			if backend == "postgres" {
				opts.store = testenv.Postgres(t)
			}
			peer := newSlackPeer(t)
			s := startServer(t, peer.URL, opts)

			req, path := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "start tools")
			status, ack := send(t, req)
			if status != 200 || ack != "Checking tools (i-0123456789abcdef0) to start what is stopped — I'll report back here." {
				t.Fatalf("ack = %d %q", status, ack)
			}
			got := peer.waitAnswers(t, path, 1)
			if want := "tools (i-0123456789abcdef0) is now running at 107.20.248.29."; len(got) != 1 || got[0] != want {
				t.Errorf("answers = %q, want [%q]", got, want)
			}

			req, path = slashCommand(t, s, peer, "U0OPS2", "C0OPS", "start tools")
			send(t, req)
			if got := peer.waitAnswers(t, path, 1); got[0] != "tools (i-0123456789abcdef0) is already running at 107.20.248.29." {
				t.Errorf("second start answered %q", got)
			}

			req, path = slashCommand(t, s, peer, "U0OPS1", "C0OPS", "status")
			send(t, req)
			got = peer.waitAnswers(t, path, 1)
			if !strings.Contains(got[0], "tools (i-0123456789abcdef0) is running at 107.20.248.29.") || !strings.Contains(got[0], "web-1 (i-0fedcba9876543210) is running") {
				t.Errorf("status answered %q", got)
			}

			req, path = slashCommand(t, s, peer, "U0OPS1", "C0OPS", "stop tools")
			send(t, req)
			req2, path2 := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "stop tools")
			time.Sleep(100 * time.Millisecond) // let the first stop reach the cloud
			send(t, req2)
			if got := peer.waitAnswers(t, path, 1); got[0] != "tools (i-0123456789abcdef0) is now stopped." {
				t.Errorf("stop answered %q", got)
			}
			if got := peer.waitAnswers(t, path2, 1); got[0] != "tools (i-0123456789abcdef0) is already stopping." && got[0] != "tools (i-0123456789abcdef0) is already stopped." {
				t.Errorf("second stop answered %q", got)
			}
		})
	}
}

func TestCommandRefusalsAndHelp(t *testing.T) {
	t.Parallel()
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{})
	cases := []struct {
		name, user, channel, text, want string
	}{
		{"unauthorized user", "U0INTRUDER", "C0OPS", "start tools", "Sorry, you may not use /ec2 here: you are not on this command's allow list."},
		{"wrong channel", "U0OPS1", "C0RANDOM", "start tools", "Sorry, you may not use /ec2 here: this command is not allowed in this channel."},
		{"no text", "U0OPS1", "C0OPS", "", "Try `/ec2 status|start|stop|reboot|list [target]`. Targets: tools, web, an instance id, or a tag selector like env=dev."},
		{"unknown subcommand", "U0OPS1", "C0OPS", "launch tools", `I don't know "launch". Try ` + "`/ec2 status|start|stop|reboot|list [target]`"},
		{"unknown target", "U0OPS1", "C0OPS", "start toolz", `I don't know the target "toolz". Targets: tools, web`},
		{"start without target", "U0OPS1", "C0OPS", "start", "Which instance? Try `/ec2 start tools`."},
	}
	var paths []string
	for _, c := range cases {
		req, path := slashCommand(t, s, peer, c.user, c.channel, c.text)
		status, ack := send(t, req)
		if status != 200 || !strings.HasPrefix(ack, c.want) {
			t.Errorf("%s: ack = %d %q, want prefix %q", c.name, status, ack, c.want)
		}
		paths = append(paths, path)
	}
	// Nothing was started: a later allowed command is answered, the refused
	// ones never are.
	req, path := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "status tools")
	send(t, req)
	peer.waitAnswers(t, path, 1)
	for i, p := range paths {
		if got := peer.answers(p); len(got) != 0 {
			t.Errorf("%s: refused command was answered later: %q", cases[i].name, got)
		}
	}
}

func TestHostileRequestsRejected(t *testing.T) {
	t.Parallel()
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{})
	good, path := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "start tools")
	body := "token=x&team_id=T1&channel_id=C0OPS&user_id=U0OPS1&command=%2Fec2&text=start+tools&response_url=" + peer.URL + path
	cases := []struct {
		name   string
		mutate func(r *http.Request) *http.Request
		status int
	}{
		{"tampered body", func(r *http.Request) *http.Request {
			nr, _ := http.NewRequest(http.MethodPost, r.URL.String(), strings.NewReader(body+"x"))
			nr.Header = r.Header.Clone()
			return nr
		}, 401},
		{"stale timestamp", func(r *http.Request) *http.Request {
			nr, _ := http.NewRequest(http.MethodPost, r.URL.String(), strings.NewReader(body))
			sign(nr, body, time.Now().Add(-6*time.Minute))
			return nr
		}, 401},
		{"missing headers", func(r *http.Request) *http.Request {
			nr, _ := http.NewRequest(http.MethodPost, r.URL.String(), strings.NewReader(body))
			nr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return nr
		}, 401},
		{"oversized body", func(r *http.Request) *http.Request {
			big := body + "&pad=" + strings.Repeat("a", 70<<10)
			nr, _ := http.NewRequest(http.MethodPost, r.URL.String(), strings.NewReader(big))
			sign(nr, big, time.Now())
			return nr
		}, 413},
	}
	for _, c := range cases {
		status, text := send(t, c.mutate(good))
		if status != c.status {
			t.Errorf("%s: status %d (%q), want %d", c.name, status, text, c.status)
		}
	}
	// None of them started anything.
	time.Sleep(500 * time.Millisecond)
	if got := peer.answers(path); len(got) != 0 {
		t.Errorf("a rejected request was acted on: %q", got)
	}
}

func TestResponseURLFailureIsRetried(t *testing.T) {
	t.Parallel()
	peer := newSlackPeer(t)
	peer.failNext = 2
	s := startServer(t, peer.URL, serverOptions{})
	req, path := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "status tools")
	send(t, req)
	got := peer.waitAnswers(t, path, 1)
	if len(got) != 1 || !strings.HasPrefix(got[0], "tools (i-0123456789abcdef0) is stopped.") {
		t.Errorf("answers = %q, want exactly one status line", got)
	}
}

// A kill -9 between the ack and the answer loses nothing: after a restart the
// run resumes and the channel gets its answer exactly once.
func TestKillBetweenAckAndAnswer(t *testing.T) {
	t.Parallel()
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{pending: "2s"})
	req, path := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "start tools")
	status, ack := send(t, req)
	if status != 200 || !strings.HasPrefix(ack, "Checking tools (i-0123456789abcdef0) to start") {
		t.Fatalf("ack = %d %q", status, ack)
	}
	s.kill9()
	if got := peer.answers(path); len(got) != 0 {
		t.Fatalf("answered before the instance could be running: %q", got)
	}
	s.start()
	peer.waitAnswers(t, path, 1)
	time.Sleep(time.Second) // a duplicate would come now
	got := peer.answers(path)
	if want := "tools (i-0123456789abcdef0) is now running at 107.20.248.29."; len(got) != 1 || got[0] != want {
		t.Errorf("answers after restart = %q, want exactly [%q]", got, want)
	}
}

// A client that sends its headers a byte at a time (slowloris) or never
// finishes its body is cut off by the server's read timeouts instead of
// holding a connection forever.
func TestSlowClientsAreCutOff(t *testing.T) {
	t.Parallel()
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{})
	for _, c := range []struct {
		name string
		send func(conn net.Conn)
	}{
		{"slow headers", func(conn net.Conn) {
			fmt.Fprint(conn, "POST /slack/commands HTTP/1.1\r\nHost: x\r\n")
			for range 30 {
				if _, err := fmt.Fprint(conn, "X-Slow: y\r\n"); err != nil {
					return
				}
				time.Sleep(500 * time.Millisecond)
			}
		}},
		{"body never finished", func(conn net.Conn) {
			fmt.Fprint(conn, "POST /slack/commands HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			go c.send(conn)
			// The server must close the connection on its own; reading
			// returns then. The bound is far above the server's timeouts.
			_ = conn.SetReadDeadline(time.Now().Add(40 * time.Second))
			_, err = io.Copy(io.Discard, conn)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server kept the connection open for %s", time.Since(start).Round(time.Second))
			}
		})
	}
}

// More hostile input: forged and malformed interactions, malformed bodies,
// an unknown approval; each is answered as it should be, audited, and
// nothing runs.
func TestHostileInteractionsAndBodies(t *testing.T) {
	t.Parallel()
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{})
	post := func(path, contentType, body string, signed bool) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.url(path), strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		if signed {
			sign(req, body, time.Now())
		} else {
			req.Header.Set("X-Slack-Request-Timestamp", fmt.Sprint(time.Now().Unix()))
			req.Header.Set("X-Slack-Signature", "v0=0000000000000000000000000000000000000000000000000000000000000000")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	form := "application/x-www-form-urlencoded"
	payload := `{"type":"block_actions","trigger_id":"t.1","user":{"id":"U0OPS1"},"channel":{"id":"C0OPS"},"team":{"id":"T1"},` +
		`"actions":[{"action_id":"approve","block_id":"approval:r-forged-1","value":"r-forged-1","type":"button"}]}`
	cases := []struct {
		name, path, ctype, body string
		signed                  bool
		want                    int
	}{
		{"forged interaction", "/slack/interactions", form, "payload=" + payload, false, 401},
		{"interaction for an unknown approval", "/slack/interactions", form, "payload=" + payload, true, 200},
		{"interaction that is not JSON", "/slack/interactions", form, "payload={not json", true, 400},
		{"events body that is not JSON", "/slack/events", "application/json", "{", true, 400},
		{"slash command that is not a form", "/slack/commands", form, "%zz", true, 400},
	}
	for _, c := range cases {
		if got := post(c.path, c.ctype, c.body, c.signed); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	time.Sleep(300 * time.Millisecond) // interactions are handled after the ack
	cmd := exec.Command(binary, "audit", "--config", s.config, "--json")
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	for _, want := range []string{`"outcome":"unauthorized"`, `"subject":"approve approval r-forged-1","outcome":"refused","detail":"unknown approval`, `"outcome":"invalid"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("audit lacks %s:\n%s", want, out)
		}
	}
}
