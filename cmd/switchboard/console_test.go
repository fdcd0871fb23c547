package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/switchboardhq/switchboard/testenv"
)

// A newcomer opens the console of the real binary in a browser, types
// /ec2 start tools as an ops user and sees the ack, then the answer, and the
// run in the Runs tab.
func TestConsoleStartsAnInstance(t *testing.T) {
	t.Parallel()
	browser := testenv.Browser(t)
	peer := newSlackPeer(t)
	// With Slack configured the console acts as the logged-in person: the
	// generated token logs in as console.operator.
	s := startServer(t, peer.URL, serverOptions{config: configYAML + "console: { operator: U0OPS1 }\n"})

	ctx, cancel := context.WithTimeout(browser, 60*time.Second)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.Navigate(s.consoleURL("/")),
		chromedp.WaitVisible(chromedp.ID("input")),
		chromedp.SetValue(chromedp.ID("user"), "U0OPS1"),
		chromedp.SetValue(chromedp.ID("channel"), "C0OPS"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("channel").dispatchEvent(new Event("change"))`),
		chromedp.SendKeys(chromedp.ID("input"), "/ec2 start tools"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#transcript .line[data-kind="ack"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#transcript .line[data-kind="answer"]`)),
	)
	if err != nil {
		t.Fatalf("send /ec2 start tools in the console: %v\n%s", err, s.logs)
	}
	transcript, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("transcript")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"U0OPS1: /ec2 start tools",
		"Starting tools (i-0123456789abcdef0) — I'll report back here.",
		"tools (i-0123456789abcdef0) is now running at 107.20.248.29.",
	} {
		if !strings.Contains(transcript, want) {
			t.Errorf("transcript does not show %q:\n%s", want, transcript)
		}
	}
	// The Runs tab refreshes on its own; wait for it to show the run done.
	var runs string
	for !strings.Contains(runs, "succeeded") {
		if ctx.Err() != nil {
			t.Fatalf("runs table never showed the finished run:\n%s", runs)
		}
		time.Sleep(200 * time.Millisecond)
		if runs, err = chromedp.Run(ctx, chromedp.Text(chromedp.ID("runs"))); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(runs, "ec2.start") {
		t.Errorf("runs table does not show the run:\n%s", runs)
	}
}

// The built-in demo's /restart asks for an approval; in the console the
// other ops person approves with the button, and the run goes on.
func TestConsoleApproval(t *testing.T) {
	t.Parallel()
	browser := testenv.Browser(t)
	peer := newSlackPeer(t)
	demo, err := os.ReadFile(filepath.Join("..", "..", "config", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(demo), "listen: 127.0.0.1:8080", "listen: {{listen}}\ndata_dir: {{data_dir}}\nstore: {{store}}", 1)
	cfg = strings.Replace(cfg, "pending_duration: 3s", "pending_duration: 300ms", 1)
	cfg = strings.Replace(cfg, "stopping_duration: 3s", "stopping_duration: 300ms", 1)
	s := startServer(t, peer.URL, serverOptions{config: cfg})

	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	err = chromedp.Do(ctx,
		chromedp.Navigate(s.consoleURL("/")),
		chromedp.WaitVisible(chromedp.ID("input")),
		chromedp.SetValue(chromedp.ID("user"), "U0OPS1"),
		chromedp.SetValue(chromedp.ID("channel"), "C0OPS"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("channel").dispatchEvent(new Event("change"))`),
		chromedp.SendKeys(chromedp.ID("input"), "/restart i-0123456789abcdef0"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#transcript .approval button.approve`)),
		chromedp.SetValue(chromedp.ID("user"), "U0OPS2"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("user").dispatchEvent(new Event("change"))`),
		chromedp.Click(chromedp.CSS(`#transcript .approval button.approve`)),
	)
	if err != nil {
		t.Fatalf("ask and approve in the console: %v\n%s", err, s.logs)
	}
	var transcript string
	for !strings.Contains(transcript, "tools (i-0123456789abcdef0) was restarted.") {
		if ctx.Err() != nil {
			t.Fatalf("the restart never finished:\n%s", transcript)
		}
		time.Sleep(200 * time.Millisecond)
		if transcript, err = chromedp.Run(ctx, chromedp.Text(chromedp.ID("transcript"))); err != nil {
			t.Fatal(err)
		}
	}
	result, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#transcript .approval-result`)))
	if err != nil {
		t.Fatal(err)
	}
	// Shown as Slack shows it: the mention by the name the config gives.
	if result != "Thanks: approved by @ben." {
		t.Errorf("the approve button answered %q", result)
	}
}

// The built-in demo deploys a branch of its own git repository: a newcomer
// types /deploy login-fix in the console and sees the branch found, the
// environment launched on the simulated cloud and its address; /deploy
// list shows it. A screenshot of the page is kept in the test's artifacts
// (SWITCHBOARD_ARTIFACTS, or the test's temporary directory).
func TestConsoleDeploysABranch(t *testing.T) {
	t.Parallel()
	browser := testenv.Browser(t)
	peer := newSlackPeer(t)
	demo, err := os.ReadFile(filepath.Join("..", "..", "config", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(demo), "listen: 127.0.0.1:8080", "listen: {{listen}}\ndata_dir: {{data_dir}}\nstore: {{store}}", 1)
	cfg = strings.Replace(cfg, "pending_duration: 3s", "pending_duration: 300ms", 1)
	s := startServer(t, peer.URL, serverOptions{config: cfg})

	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	send := func(text string) chromedp.Action[chromedp.Void] {
		return chromedp.SendKeys(chromedp.ID("input"), text+kb.Enter)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(s.consoleURL("/")),
		chromedp.WaitVisible(chromedp.ID("input")),
		chromedp.SetValue(chromedp.ID("user"), "U0DEV1"),
		chromedp.SetValue(chromedp.ID("channel"), "C0DEV"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("channel").dispatchEvent(new Event("change"))`),
		send("/deploy login-fix"),
	)
	if err != nil {
		t.Fatalf("send /deploy in the console: %v\n%s", err, s.logs)
	}
	transcript := func(want string) string {
		t.Helper()
		var text string
		for !strings.Contains(text, want) {
			if ctx.Err() != nil {
				t.Fatalf("the transcript never showed %q:\n%s\n%s", want, text, s.logs)
			}
			time.Sleep(200 * time.Millisecond)
			if text, err = chromedp.Run(ctx, chromedp.Text(chromedp.ID("transcript"))); err != nil {
				t.Fatal(err)
			}
		}
		return text
	}
	got := transcript("feature/PROJ-1234-login-fix is up at http://")
	for _, want := range []string{
		`Looking for "login-fix" among the open pull requests and branches — I'll report back here.`,
		"Deploying feature/PROJ-1234-login-fix (9beb620) — I'll post the address when it is up.",
		", until ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("transcript does not show %q:\n%s", want, got)
		}
	}
	if err := chromedp.Do(ctx, send("/deploy list")); err != nil {
		t.Fatal(err)
	}
	transcript("1 environment(s) of /deploy:")
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("SWITCHBOARD_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, "console-deploy.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
