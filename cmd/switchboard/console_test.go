package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
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
	// The banner's address logged the browser in and left no token in
	// the address bar.
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || loc != s.url("/") {
		t.Errorf("the console's address is %q (%v), want %q without the token", loc, err, s.url("/"))
	}
	transcript, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("transcript")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"U0OPS1: /ec2 start tools",
		"Checking tools (i-0123456789abcdef0) to start what is stopped — I'll report back here.",
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
	// With Slack configured the user picker is the logged-in operator.
	if label, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`label[for="user"]`))); err != nil || label != "Acting as" {
		t.Errorf("the user picker's label is %q (%v), want Acting as", label, err)
	}
	screenshot(t, ctx, "console-acting-as.png")
}

// The built-in demo's /restart asks for an approval; in the console the
// other ops person approves with the button, and the run goes on.
func TestConsoleApproval(t *testing.T) {
	t.Parallel()
	browser := testenv.Browser(t)
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{config: demoConfig(t)})

	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	err := chromedp.Do(ctx,
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
	s := startServer(t, peer.URL, serverOptions{config: demoConfig(t)})

	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	send := func(text string) chromedp.Action[chromedp.Void] {
		return chromedp.SendKeys(chromedp.ID("input"), text+kb.Enter)
	}
	err := chromedp.Do(ctx,
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
	writeArtifact(t, "console-deploy.png", png)
}

// The console asks everyone for a login, on loopback too: another Unix
// user on the machine, who can reach the loopback port but not read the
// data directory, gets a login page and 401s, never the page's CSRF
// token, and can neither run a command nor decide an approval, as anyone.
// The person who started Switchboard opens the banner's address: the token
// in it logs the browser in once and is dropped from the address; it is
// kept (0600) in the data directory and reused after a restart, and the
// banner is the only line that ever shows it.
func TestConsoleLoginAgainstAnotherUnixUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test acts as another Unix user (nobody, 65534) and must run as root in CI")
		}
		t.Skip("acting as another Unix user (nobody) needs root; run as root or with CI=true to take part")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is needed to act as another Unix user: apt-get install -y curl")
		}
		t.Skip("curl is not installed")
	}
	peer := newSlackPeer(t)
	demo, err := os.ReadFile(filepath.Join("..", "..", "config", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(demo), "listen: 127.0.0.1:8080", "listen: {{listen}}\ndata_dir: {{data_dir}}\nstore: {{store}}", 1)
	s := startServer(t, peer.URL, serverOptions{config: cfg})

	// The banner's address carries the token, which is in the data
	// directory, 0600, and on no other line of the output.
	token := s.loginToken()
	banner := bannerURL(t, s)
	if banner != s.url("/?token="+token) {
		t.Fatalf("the banner's address is %q, want %q", banner, s.url("/?token=")+"<the token in the data directory>")
	}
	if info, err := os.Stat(filepath.Join(s.dataDir, "console-token")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the token file: %v, mode %v; want 0600", err, info.Mode())
	}
	assertTokenOnlyInBanner(t, s, token)
	if got := runCLI(t, s, "console-url", "--config", s.config); got != banner+"\n" {
		t.Errorf("switchboard console-url printed %q, want the banner's %q", got, banner)
	}

	// The owner opens the banner's address: logged in, sent to / without
	// the token.
	jar, _ := cookiejar.New(nil)
	owner := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := owner.Get(banner)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" || len(resp.Cookies()) != 1 {
		t.Fatalf("the banner's address = %d to %q with cookies %v, want 303 to / with a session", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}
	// The owner asks for a restart, which waits for an approval.
	owned := openConsole(t, s, token)
	if status, body := owned.post(t, "/console/api/command", `{"user":"U0OPS1","channel":"C0OPS","text":"/restart i-0123456789abcdef0"}`); status != 200 {
		t.Fatalf("the owner's /restart = %d %s", status, body)
	}
	var approvalID string
	waitFor(t, "the /restart's approval", func() bool {
		m := regexp.MustCompile(`"approval":\{"id":"([^"]+)"`).FindStringSubmatch(owned.get(t, "/console/api/transcript?channel=C0OPS"))
		if m != nil {
			approvalID = m[1]
		}
		return approvalID != ""
	})

	// Another Unix user tries everything the console offers.
	api := []string{"-H", "Content-Type: application/json", "-H", "X-Switchboard-CSRF: " + owned.csrf}
	for _, tt := range []struct {
		what   string
		args   []string
		status string
	}{
		{"the console page", []string{s.url("/")}, "303"},
		{"the login page", []string{s.url("/console/login")}, "200"},
		{"a guessed token in the address", []string{s.url("/?token=guess")}, "401"},
		{"a guessed token in the form", []string{"--data", "token=guess", s.url("/console/login")}, "401"},
		{"the runs", []string{s.url("/console/api/runs")}, "401"},
		{"the transcript", []string{s.url("/console/api/transcript?channel=C0OPS")}, "401"},
		{"the approvals", []string{s.url("/console/api/approvals")}, "401"},
		{"a command as U0OPS1", append(api, "--data", `{"user":"U0OPS1","channel":"C0OPS","text":"/restart i-0123456789abcdef0"}`, s.url("/console/api/command")), "401"},
		{"approving as U0OPS2", append(api, "--data", `{"user":"U0OPS2","approve":true}`, s.url("/console/api/approvals/"+approvalID)), "401"},
		{"reading the token file", []string{"file://" + filepath.Join(s.dataDir, "console-token")}, "curl"},
	} {
		cmd := exec.Command(curl, append([]string{"-sS", "-o", "-", "-w", "\n%{http_code}"}, tt.args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		text := string(out)
		if tt.status == "curl" {
			if err == nil || strings.Contains(text, token) {
				t.Errorf("nobody read the token file: %s", text)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s as nobody: %v\n%s", tt.what, err, out)
		}
		i := strings.LastIndexByte(text, '\n')
		body, status := text[:i], text[i+1:]
		if status != tt.status {
			t.Errorf("%s as nobody = %s, want %s: %s", tt.what, status, tt.status, body)
		}
		if csrfMeta.MatchString(body) || strings.Contains(body, owned.csrf) {
			t.Errorf("%s as nobody shows the CSRF token:\n%s", tt.what, body)
		}
	}

	// Nothing happened: no second run, the approval still waits.
	runs := owned.get(t, "/console/api/runs")
	if n := strings.Count(runs, `"workflow":"restart"`); n != 1 {
		t.Errorf("%d /restart runs after nobody's attempts, want the owner's 1:\n%s", n, runs)
	}
	var inbox struct {
		Pending []struct{ ID string } `json:"pending"`
	}
	raw := owned.get(t, "/console/api/approvals")
	if err := json.Unmarshal([]byte(raw), &inbox); err != nil || len(inbox.Pending) != 1 || inbox.Pending[0].ID != approvalID {
		t.Errorf("after nobody's attempts the inbox is %s, want %s still pending", raw, approvalID)
	}

	// After a restart the same token logs in; the banner shows it again.
	s.stop()
	s.start()
	if got := bannerURL(t, s); got != banner {
		t.Errorf("after a restart the banner says %q, want the same address %q", got, banner)
	}
	if s.loginToken() != token {
		t.Error("the token changed across a restart")
	}
	assertTokenOnlyInBanner(t, s, token)
	openConsole(t, s, token)
}

var bannerLine = regexp.MustCompile(`Switchboard is running\. Open (\S+) `)

// bannerURL is the address the start banner tells the operator to open.
func bannerURL(t *testing.T, s *server) string {
	t.Helper()
	var m []string
	waitFor(t, "the start banner", func() bool {
		m = bannerLine.FindStringSubmatch(s.logs.String())
		return m != nil
	})
	return m[1]
}

// assertTokenOnlyInBanner fails when the process's output shows the login
// token anywhere but the start banner.
func assertTokenOnlyInBanner(t *testing.T, s *server, token string) {
	t.Helper()
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, token) && !bannerLine.MatchString(line) {
			t.Errorf("the login token is on a line that is not the banner: %s", line)
		}
	}
}

// With Slack configured, the console acts as the logged-in person's chat
// identity, whatever user a request names: the generated token logs in as
// console.operator (U0OPS1), whose stop of a prod instance waits for an
// approval; that login cannot approve it by naming U0OPS2, since the
// approver rules see U0OPS1, who asked; U0OPS2, logged in with their own
// token from console.operators, can.
func TestConsoleActsAsTheLoggedInOperator(t *testing.T) {
	t.Parallel()
	peer := newSlackPeer(t)
	const ben = "ben-console-token-0123456789"
	s := startServer(t, peer.URL, serverOptions{config: policyConfig + "console:\n  operator: U0OPS1\n  operators: { U0OPS2: " + ben + " }\n"})
	ana := openConsole(t, s, "")
	if status, body := ana.post(t, "/console/api/command", `{"user":"U0OPS2","channel":"C0OPS","text":"/ec2 stop web"}`); status != 200 {
		t.Fatalf("/ec2 stop web from the console = %d %s", status, body)
	}
	var approvalID, transcript string
	waitFor(t, "the stop's approval", func() bool {
		transcript = ana.get(t, "/console/api/transcript?channel=C0OPS")
		if m := regexp.MustCompile(`"approval":\{"id":"([^"]+)"`).FindStringSubmatch(transcript); m != nil {
			approvalID = m[1]
		}
		return approvalID != ""
	})
	if !strings.Contains(transcript, `"user_id":"U0OPS1","kind":"command"`) {
		t.Errorf("the command was not typed as U0OPS1:\n%s", transcript)
	}
	_, text := ana.post(t, "/console/api/approvals/"+approvalID, `{"user":"U0OPS2","approve":true}`)
	if !strings.Contains(text, "You started this run, so someone else has to approve it.") {
		t.Errorf("U0OPS1 approving their own stop by naming U0OPS2 answered %s", text)
	}
	status, text := openConsole(t, s, ben).post(t, "/console/api/approvals/"+approvalID, `{"user":"U0OPS1","approve":true}`)
	if status != 200 || !strings.Contains(text, `"text":"Thanks: approved by \u003c@U0OPS2\u003e."`) {
		t.Errorf("U0OPS2's approval answered %d %s", status, text)
	}
}

// The console's login token is made once, 0600, and read back as it is; a
// token file others can read, or one that holds no token, is refused with
// what to do.
func TestConsoleLoginTokenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := consoleLoginToken(dir, false); err == nil || !strings.Contains(err.Error(), "does not exist yet") {
		t.Errorf("reading a token never made: %v", err)
	}
	token, err := consoleLoginToken(dir, true)
	if err != nil || len(token) < 26 {
		t.Fatalf("first start: %q, %v", token, err)
	}
	path := filepath.Join(dir, "console-token")
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v %v, want mode 0600", info.Mode(), err)
	}
	if again, err := consoleLoginToken(dir, true); err != nil || again != token {
		t.Errorf("second start: %q, %v; want the same token", again, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := consoleLoginToken(dir, true); err == nil || !strings.Contains(err.Error(), "can be read by other users (mode 0644): run chmod 600 ") {
		t.Errorf("a token file others can read: %v", err)
	}
	if err := os.WriteFile(path, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := consoleLoginToken(dir, true); err == nil || !strings.Contains(err.Error(), "does not hold a login token: delete it") {
		t.Errorf("an empty token file: %v", err)
	}
}
