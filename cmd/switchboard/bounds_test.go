package main

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
)

// A flood of 20,000 requests with bad signatures adds a bounded number of
// audit lines and log lines (the first few a minute, then one summary),
// every one of them is counted in /metrics, and signed commands sent
// during the flood keep being acked.
func TestRejectedFloodIsBounded(t *testing.T) {
	t.Parallel()
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{})
	started := time.Now()

	const flood, workers = 20000, 8
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	var sent, unauthorized atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for sent.Add(1) <= flood {
				req, _ := http.NewRequest(http.MethodPost, s.url("/slack/commands"), strings.NewReader("command=/ec2&text=status&user_id=U0OPS1"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Slack-Request-Timestamp", "1700000000")
				req.Header.Set("X-Slack-Signature", "v0="+strings.Repeat("ab", 32))
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusUnauthorized {
					unauthorized.Add(1)
				}
			}
		})
	}
	// Signed commands during the flood: every one is acked.
	var acked, commands int
	for sent.Load() < flood {
		req, _ := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "status tools")
		commands++
		if status, ack := send(t, req); status == 200 && strings.HasPrefix(ack, "Checking tools") {
			acked++
		} else {
			t.Errorf("command during the flood: %d %q", status, ack)
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	if unauthorized.Load() != flood {
		t.Errorf("%d of %d forged requests got 401", unauthorized.Load(), flood)
	}
	if commands == 0 || acked != commands {
		t.Errorf("%d of %d signed commands acked during the flood", acked, commands)
	}

	resp, err := http.Get(s.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `switchboard_requests_rejected_total{endpoint="slack",outcome="unauthorized"} 20000`; !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %s", want)
	}

	// Stopping writes the summary of the minute in progress.
	s.stop()
	minutes := int64(time.Since(started)/time.Minute) + 2 // windows the flood may have touched
	bound := int(minutes) * (switchboard.DefaultRejectsPerSource + 1)
	cmd := exec.Command(binary, "audit", "--config", s.config, "--json")
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	audit := string(out)
	rows := strings.Count(audit, `"outcome":"unauthorized"`) + strings.Count(audit, `"outcome":"rejected"`)
	if rows == 0 || rows > bound {
		t.Errorf("%d audit lines for %d forged requests, want at most %d", rows, flood, bound)
	}
	if !strings.Contains(audit, " more rejected requests in the minute from ") {
		t.Errorf("no summary line in the audit log:\n%.2000s", audit)
	}
	logs := s.logs.String()
	if n := strings.Count(logs, "slack request rejected") + strings.Count(logs, "more requests rejected"); n == 0 || n > bound {
		t.Errorf("%d log lines for %d forged requests, want at most %d", n, flood, bound)
	}
}
