package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/switchboardhq/switchboard/testenv"
)

// demoServer starts the real binary on the built-in demo config, with the
// simulated cloud's transitions shortened.
func demoServer(t *testing.T) *server {
	t.Helper()
	peer := newSlackPeer(t)
	demo, err := os.ReadFile(filepath.Join("..", "..", "config", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(demo), "listen: 127.0.0.1:8080", "listen: {{listen}}\ndata_dir: {{data_dir}}\nstore: {{store}}", 1)
	for _, d := range []string{"pending_duration", "stopping_duration", "shutting_down_duration"} {
		cfg = strings.Replace(cfg, d+": 3s", d+": 300ms", 1)
	}
	return startServer(t, peer.URL, serverOptions{config: cfg})
}

// openDemoConsole starts the demo and a browser on a laptop-sized window,
// opens the console at path and returns the server and the browser's
// context, bounded by within.
func openDemoConsole(t *testing.T, path string, within time.Duration) (*server, context.Context) {
	t.Helper()
	browser := testenv.Browser(t)
	s := demoServer(t)
	ctx, cancel := context.WithTimeout(browser, within)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1400, 900), chromedp.Navigate(s.consoleURL(path))); err != nil {
		t.Fatalf("open the console at %s: %v\n%s", path, err, s.logs)
	}
	return s, ctx
}

// screenshot keeps a picture of the page in the test's artifacts
// (SWITCHBOARD_ARTIFACTS, or the test's temporary directory).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := os.Getenv("SWITCHBOARD_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitText polls the text of sel until it contains every one of want.
func waitText(t *testing.T, ctx context.Context, s *server, sel string, want ...string) string {
	t.Helper()
	var text string
	for {
		var err error
		if text, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel))); err != nil && ctx.Err() == nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		missing := ""
		for _, w := range want {
			if !strings.Contains(text, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return text
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never showed %q:\n%s\n%s", sel, missing, text, s.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pick chooses a user or channel in the playground's pickers, as a person
// would.
func pick(id, value string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if _, err := chromedp.SetValue(chromedp.ID(id), value)(ctx, t); err != nil {
			return chromedp.Void{}, err
		}
		return chromedp.Evaluate[chromedp.Void](`document.getElementById("`+id+`").dispatchEvent(new Event("change"))`)(ctx, t)
	}
}

// An operator's cockpit, driven in a browser against the real binary: a
// /restart asks for an approval, which the other ops person approves from
// the Approvals inbox; after a reload the request in the playground still
// shows who approved it and when, with its buttons disabled; the run opens
// to its steps, messages, approvals and audit lines; a refused command and
// one with nothing to do are not green successes.
func TestConsoleCockpitApprovalsAndRunDetail(t *testing.T) {
	t.Parallel()
	s, ctx := openDemoConsole(t, "/", 120*time.Second)
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.ID("input")),
		pick("user", "U0OPS1"),
		pick("channel", "C0OPS"),
		chromedp.SendKeys(chromedp.ID("input"), "/restart i-0123456789abcdef0"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#transcript .approval[data-state="pending"] button.approve`)),
	)
	if err != nil {
		t.Fatalf("ask for a restart: %v\n%s", err, s.logs)
	}
	// The request reads as Slack shows it: the mention by name.
	waitText(t, ctx, s, `#transcript .line[data-kind="answer"]`, "@ana wants to restart tools (i-0123456789abcdef0). Approve?")

	// The inbox: ana started the run, so she may not approve it.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("tab-approvals")),
		chromedp.WaitVisible(chromedp.CSS(`#approvals-pending .inbox-item button.approve[disabled]`)),
	)
	if err != nil {
		t.Fatalf("open the approvals inbox: %v\n%s", err, s.logs)
	}
	waitText(t, ctx, s, "#approvals-pending", "You started this run, so someone else has to approve it.", "approvers: @ana, @ben")
	// ben may.
	err = chromedp.Do(ctx,
		pick("user", "U0OPS2"),
		chromedp.WaitVisible(chromedp.CSS(`#approvals-pending .inbox-item button.approve:not([disabled])`)),
	)
	if err != nil {
		t.Fatalf("the inbox does not let an approver answer: %v\n%s", err, s.logs)
	}
	screenshot(t, ctx, "console-approvals-inbox.png")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#approvals-pending .inbox-item button.approve`))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, s, "#transcript", "tools (i-0123456789abcdef0) was restarted.")
	waitText(t, ctx, s, "#approvals-decided", "Approved by @ben")

	// After a reload, from the store: decided, by whom and when, buttons
	// off.
	err = chromedp.Do(ctx,
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.ID("input")),
		pick("channel", "C0OPS"),
		chromedp.WaitVisible(chromedp.CSS(`#transcript .approval[data-state="approved"] .approval-decided`)),
	)
	if err != nil {
		t.Fatalf("reload the console: %v\n%s", err, s.logs)
	}
	decided := waitText(t, ctx, s, `#transcript .approval .approval-decided`, "✓ Approved by @ben at ")
	enabled, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#transcript .approval button:not([disabled])").length`))
	if err != nil {
		t.Fatal(err)
	}
	if enabled != 0 {
		t.Errorf("after a reload the decided approval (%q) still has %d live buttons", decided, enabled)
	}
	screenshot(t, ctx, "console-approval-decided.png")

	// A refused command and one with nothing to do.
	err = chromedp.Do(ctx,
		pick("user", "U0OPS1"),
		chromedp.SendKeys(chromedp.ID("input"), "/ec2 stop i-0c3d4e5f607182930"+kb.Enter),
	)
	if err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, s, "#transcript", "/ec2 may not touch db-1 (i-0c3d4e5f607182930).")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("input"), "/ec2 reboot i-0b2c3d4e5f6071829"+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, s, "#transcript", "only a running instance can be rebooted.")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("tab-runs"))); err != nil {
		t.Fatal(err)
	}
	runs := waitText(t, ctx, s, "#runs", "refused", "nothing to do", "restart", "tools (i-0123456789abcdef0) was restarted.")
	for _, st := range []string{"refused", "nothing to do"} {
		color, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('#runs td.state[data-state="`+st+`"] .state-badge')).color`))
		if err != nil {
			t.Fatalf("find the %s run: %v\n%s", st, err, runs)
		}
		if color == "rgb(21, 128, 61)" {
			t.Errorf("a %s run is shown green, as a success", st)
		}
	}
	wraps, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`[...document.querySelectorAll("#runs td.run-id a")].some(a => a.getClientRects().length > 1)`))
	if err != nil {
		t.Fatal(err)
	}
	if wraps {
		t.Error("a run id wraps in the runs table")
	}
	screenshot(t, ctx, "console-runs.png")

	// The restart run opens to its detail, by its address.
	runID, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('#runs tr.run-row')].find(tr => tr.textContent.includes("restart")).dataset.run`))
	if err != nil {
		t.Fatalf("find the restart run: %v", err)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(s.url("/#run/"+runID)),
		chromedp.WaitVisible(chromedp.CSS(`#run-detail table.steps`)),
	)
	if err != nil {
		t.Fatalf("open run %s: %v\n%s", runID, err, s.logs)
	}
	detail := waitText(t, ctx, s, "#run-detail", "restart", "succeeded", runID, "Steps", "describe (inst)", "approval (ok)", "skipped",
		"Messages", "was restarted.", "Approvals", "@ben approved at", "via console", "Audit", "approve approval")
	for _, want := range []string{"@ana", "stop", "start", "notify"} {
		if !strings.Contains(detail, want) {
			t.Errorf("the run detail does not show %q:\n%s", want, detail)
		}
	}
	screenshot(t, ctx, "console-run-detail.png")

	// Clicking a run in the table opens it too.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#run-detail a.back`)),
		chromedp.WaitVisible(chromedp.CSS(`#runs tr.run-row td.state[data-state="refused"]`)),
		chromedp.Click(chromedp.CSS(`#runs tr.run-row td.state[data-state="refused"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#run-detail table.steps`)),
	)
	if err != nil {
		t.Fatalf("open the refused run: %v\n%s", err, s.logs)
	}
	waitText(t, ctx, s, "#run-detail", "ec2.stop", "refused", "may not touch db-1")
}

// The Fleet tab shows each cloud's instances with their state, address,
// tags and the commands that may touch them, and keeps them current: after
// /ec2 stop web, the web servers turn stopped without a reload.
func TestConsoleFleetView(t *testing.T) {
	t.Parallel()
	s, ctx := openDemoConsole(t, "/#fleet", 90*time.Second)
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`#fleet tr[data-instance="i-0fedcba9876543210"] td.state[data-state="running"]`)),
	)
	if err != nil {
		t.Fatalf("open the fleet view: %v\n%s", err, s.logs)
	}
	web1 := waitText(t, ctx, s, `#fleet tr[data-instance="i-0fedcba9876543210"]`, "web-1", "running", "203.0.113.10", "env=prod", "role=web", "/ec2", "/restart")
	db1 := waitText(t, ctx, s, `#fleet tr[data-instance="i-0c3d4e5f607182930"]`, "db-1", "/restart")
	if strings.Contains(db1, "/ec2") {
		t.Errorf("db-1 is outside /ec2's instances, yet the fleet view says /ec2 may touch it: %q", db1)
	}
	_ = web1
	err = chromedp.Do(ctx,
		pick("user", "U0OPS1"),
		pick("channel", "C0OPS"),
		chromedp.SendKeys(chromedp.ID("input"), "/ec2 stop web"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#fleet tr[data-instance="i-0fedcba9876543210"] td.state[data-state="stopped"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#fleet tr[data-instance="i-0a1b2c3d4e5f60718"] td.state[data-state="stopped"]`)),
	)
	if err != nil {
		t.Fatalf("the fleet view never showed the web servers stopped: %v\n%s", err, s.logs)
	}
	screenshot(t, ctx, "console-fleet.png")
}

// slackApprovalConfig is the policy test's config with a bot token and a
// webhook-started workflow that asks for an approval, posted with
// chat.postMessage.
var slackApprovalConfig = strings.Replace(policyConfig, "  api_url: {{api_url}}", "  bot_token: xoxb-e2e\n  api_url: {{api_url}}", 1) + `hooks:
  ask: { secret: hook-secret-123 }
workflows:
  asked:
    trigger: { webhook: ask }
    channel: C0OPS
    steps:
      - id: ok
        approval: { text: 'Ship it?', approvers: [group:ops], timeout: 5m }
      - notify: { text: 'shipped: {{ steps.ok.decision }}' }
`

// An approval decided in the console is shown decided in Slack too: a
// request posted with chat.postMessage is rewritten with chat.update, one
// that answered a slash command through its response_url with
// replace_original; the buttons are gone and it says who and when.
func TestConsoleDecisionUpdatesSlack(t *testing.T) {
	t.Parallel()
	peer := newSlackPeer(t)
	// With Slack configured the console decides as the logged-in person:
	// U0OPS2 logs in with their own token.
	const ben = "ben-console-token-0123456789"
	s := startServer(t, peer.URL, serverOptions{config: slackApprovalConfig + "console: { operators: { U0OPS2: " + ben + " } }\n"})
	console := openConsole(t, s, ben)
	decide := func(approvalID, user string) {
		t.Helper()
		status, raw := console.post(t, "/console/api/approvals/"+approvalID, `{"user":"`+user+`","approve":true}`)
		if status != http.StatusOK || !strings.Contains(raw, "Thanks: approved by") {
			t.Fatalf("console approval answered %d %s", status, raw)
		}
	}

	// Posted with chat.postMessage (a webhook's run): chat.update.
	mac := hmac.New(sha256.New, []byte("hook-secret-123"))
	mac.Write([]byte(`{}`))
	req, _ := http.NewRequest(http.MethodPost, s.url("/hooks/ask"), strings.NewReader(`{}`))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	send(t, req)
	ask := peer.posted(t, "Ship it?")
	m := approvalValue.FindStringSubmatch(ask.Get("blocks"))
	if m == nil {
		t.Fatalf("the approval request has no buttons: %q", ask.Get("blocks"))
	}
	decide(m[1], "U0OPS2")
	var update url.Values
	waitFor(t, "chat.update of the decided request", func() bool {
		peer.mu.Lock()
		defer peer.mu.Unlock()
		if len(peer.updates) > 0 {
			update = peer.updates[0]
		}
		return update != nil
	})
	if update.Get("channel") != "C0OPS" || update.Get("ts") != ask.Get("ts") || !strings.HasPrefix(update.Get("text"), "Ship it?\n✅ Approved by <@U0OPS2> at ") ||
		strings.Contains(update.Get("blocks"), `"approve"`) {
		t.Errorf("chat.update = %v", update)
	}
	peer.posted(t, "shipped: approved")

	// Answered a slash command through its response_url: replace_original.
	cmd, path := slashCommand(t, s, peer, "U0OPS1", "C0OPS", "stop web")
	send(t, cmd)
	peer.waitAnswers(t, path, 1)
	peer.mu.Lock()
	m = approvalValue.FindStringSubmatch(strings.Join(peer.raw[path], "\n"))
	peer.mu.Unlock()
	if m == nil {
		t.Fatal("the approval request has no buttons")
	}
	decide(m[1], "U0OPS2")
	// The request, its decision in place, "Approved by … — stopping…", then the answer.
	got := peer.waitAnswers(t, path, 4)
	peer.mu.Lock()
	raw := append([]string(nil), peer.raw[path]...)
	peer.mu.Unlock()
	replaced := -1
	for i, body := range raw {
		if strings.Contains(body, `"replace_original":true`) {
			replaced = i
		}
	}
	if replaced < 0 || !strings.Contains(got[replaced], "wants to stop web-1 (i-0fedcba9876543210)") || !strings.Contains(got[replaced], "✅ Approved by <@U0OPS2> at ") ||
		strings.Contains(raw[replaced], `"approve"`) {
		t.Errorf("the response_url got %q, want the request replaced with its decision", raw)
	}
	if !slices.Contains(got, "web-1 (i-0fedcba9876543210) is now stopped.") {
		t.Errorf("after the approval the channel got %q", got)
	}
}
