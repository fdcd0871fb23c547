package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/testenv"
)

// A cloud that stops answering is told, not hidden: the person who typed
// /ec2 start hears within a minute that AWS is not answering and until when
// Switchboard keeps trying, and at that deadline (retry_for) the run ends
// with a clear failure. AWS's endpoint here is a closed port, or a server
// that takes the connection and never answers.
func TestCloudOutageIsTold(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		endpoint func(t *testing.T) string
	}{
		{"connection refused", func(t *testing.T) string { return "http://" + testenv.FreeAddr(t) }},
		{"no answer", silentServer},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			peer := newSlackPeer(t)
			cfg := fmt.Sprintf(awsConfig, "us-east-1", tt.endpoint(t), "i-0123456789abcdef0", "107.20.248.29") + "retry_for: 20s\n"
			s := startServer(t, peer.URL, serverOptions{config: cfg})

			req, path := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "start tools")
			sent := time.Now()
			if status, ack := send(t, req); status != 200 || !strings.HasPrefix(ack, "Checking tools") {
				t.Fatalf("ack = %d %q", status, ack)
			}
			wait := func(n int, within time.Duration) []string {
				t.Helper()
				for time.Since(sent) < within {
					if got := peer.answers(path); len(got) >= n {
						return got
					}
					time.Sleep(50 * time.Millisecond)
				}
				t.Fatalf("%d answer(s) did not come within %s of the command; got %q\n%s", n, within, peer.answers(path), s.logs)
				return nil
			}
			first := wait(1, time.Minute)[0]
			if !strings.HasPrefix(first, "AWS is not answering; I'll keep trying until ") || !strings.HasSuffix(first, " UTC.") {
				t.Errorf("first answer %q, want AWS is not answering and until when", first)
			}
			// The deadline is 20 s after the first failure; the attempt
			// under way then (up to 40 s for a silent cloud) ends first.
			got := wait(2, 150*time.Second)
			t.Logf("answered after %s: %q", time.Since(sent).Round(time.Second), got)
			if !strings.HasPrefix(got[1], "AWS did not answer for 20 seconds, so I gave up: ") {
				t.Errorf("final answer %q", got[1])
			}
			time.Sleep(time.Second)
			if got := peer.answers(path); len(got) != 2 {
				t.Errorf("answers %q, want exactly two", got)
			}
			if out := auditLines(t, s); !strings.Contains(out, `"outcome":"failed"`) {
				t.Errorf("the audit log has no failed run:\n%s", out)
			}
		})
	}
}

// silentServer takes connections and never answers; it returns its URL.
func silentServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}
