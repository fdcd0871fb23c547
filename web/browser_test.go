package web_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/testenv"
	"github.com/switchboardhq/switchboard/web"
)

// openConsole serves cfg and opens its console in headless Chromium,
// logged in through the address with the generated token; the context it
// returns is bounded, so a broken page fails the test instead of hanging
// it.
func openConsole(t *testing.T, cfg web.Config) context.Context {
	t.Helper()
	cfg.LocalToken = localToken
	srv := httptest.NewServer(web.NewServer(cfg).Handler())
	t.Cleanup(srv.Close)
	browser := testenv.Browser(t)
	// The first action starts the browser; it must not run under the
	// timeout below, which would stop the browser with it.
	if err := chromedp.Do(browser, chromedp.Navigate(srv.URL+"/?token="+localToken)); err != nil {
		t.Fatalf("load the console: %v", err)
	}
	ctx, cancel := context.WithTimeout(browser, 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestConsoleInBrowser drives the playground in headless Chromium the way a
// newcomer would: pick a user, type /ec2 status, press Enter, and see the
// ack and the channel's answers appear.
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	store := &fakeStore{}
	commands := &fakeCommands{}
	commands.handleFunc = func(req switchboard.Request) (switchboard.Ack, error) {
		store.mu.Lock()
		store.runs = append(store.runs, switchboard.Run{ID: "run-1", Workflow: "ec2.status", State: switchboard.RunSucceeded,
			Request: req, Result: "tools is running", CreatedAt: time.Now()})
		store.mu.Unlock()
		return switchboard.Ack{Text: "Checking tools (i-0123…), only you can see this.", RunID: "run-1"}, nil
	}
	// The run answers in the channel once the ack is written, as the real
	// engine's messenger does a moment later.
	store.onAppend = func(line switchboard.TranscriptLine) {
		if line.Kind != "ack" || line.RunID == "" {
			return
		}
		for _, text := range []string{
			"Starting tools (i-0123…) — I'll report back here.",
			"tools (i-0123…) is now running at *107.20.248.29*",
		} {
			_, _ = store.AppendTranscript(context.Background(), switchboard.TranscriptLine{
				Time: time.Now(), RunID: line.RunID, ChannelID: line.ChannelID, Kind: "answer", Text: text,
			})
		}
	}
	ctx := openConsole(t, web.Config{
		Addr:         "127.0.0.1:0",
		Commands:     commands,
		Store:        store,
		Users:        []string{"U0DEV1", "U0OPS1"},
		Channels:     []string{"C0OPS", "C0DEV"},
		CommandNames: []string{"/ec2"},
		Sources: fakeSources{
			"mailbox:aws-notices": {State: web.SourceFailing, Since: time.Now(), Error: "mailbox aws-notices: connect to 127.0.0.1:993: connection refused",
				Failures: 2, NextTry: time.Now().Add(time.Minute)},
			"queue:ec2-events": {State: web.SourceOK, OK: true, Since: time.Now()},
		},
	})

	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.ID("input")),
		chromedp.SetValue(chromedp.ID("user"), "U0OPS1"),
		chromedp.SetValue(chromedp.ID("channel"), "C0OPS"),
		chromedp.SendKeys(chromedp.ID("input"), "/ec2 status"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#transcript .line[data-kind="ack"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#transcript .line[data-kind="answer"] + .line[data-kind="answer"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#runs tbody tr`)),
	)
	if err != nil {
		t.Fatalf("send /ec2 status: %v", err)
	}
	transcript, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("transcript")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"U0OPS1: /ec2 status",
		"Only visible to you",
		"Checking tools (i-0123…), only you can see this.",
		"Starting tools (i-0123…) — I'll report back here.",
		"tools (i-0123…) is now running at 107.20.248.29",
	} {
		if !strings.Contains(transcript, want) {
			t.Errorf("transcript does not show %q:\n%s", want, transcript)
		}
	}
	if reqs := commands.requests(); len(reqs) != 1 || reqs[0].UserID != "U0OPS1" || reqs[0].ChannelID != "C0OPS" || reqs[0].Command != "/ec2" || reqs[0].Text != "status" {
		t.Errorf("command handler got %+v, want one /ec2 status from U0OPS1 in C0OPS", reqs)
	}
	runs, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("runs")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(runs, "ec2.status") || !strings.Contains(runs, "U0OPS1") {
		t.Errorf("runs table does not show the run:\n%s", runs)
	}

	// A failing trigger source shows above the playground.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#sources .source[data-state="failing"]`))); err != nil {
		t.Fatalf("the console does not show the failing mailbox: %v", err)
	}
	sources, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("sources")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mailbox:aws-notices failing since", "connection refused", "next try", "queue:ec2-events ok"} {
		if !strings.Contains(sources, want) {
			t.Errorf("the sources line does not say %q: %q", want, sources)
		}
	}

	// The ack is ephemeral: picking another user hides it, the answers stay.
	err = chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("user"), "U0DEV1"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("user").dispatchEvent(new Event("change"))`),
		chromedp.WaitNotVisible(chromedp.CSS(`#transcript .line[data-kind="ack"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#transcript .line[data-kind="answer"]`)),
	)
	if err != nil {
		t.Fatalf("switch user: %v", err)
	}
}

// The playground shows what Slack would: mrkdwn as formatting, mentions by
// name, links only to http(s); and text that looks like HTML stays text.
func TestConsoleRendersSlackMarkup(t *testing.T) {
	t.Parallel()
	store := &fakeStore{lines: []switchboard.TranscriptLine{{ID: 1, Time: time.Now(), ChannelID: "C0OPS", Kind: "answer", Text: "" +
		"*bold* _italic_ ~strike~ `code` <https://example.com/x?a=1&amp;b=2|example> <@U0OPS1> <#C0OPS> <#C0DEV|dev> <!here>\n" +
		"&gt; quoted\n" +
		"• one\n• two\n" +
		"1. first\n" +
		"```block\n<b>not bold</b>```\n" +
		"name &lt;img src=x onerror=window.pwned=1&gt; and <javascript:window.pwned=1|click> and snake_case_id"}}}
	ctx := openConsole(t, web.Config{
		Addr: "127.0.0.1:0", Commands: &fakeCommands{}, Store: store,
		Users: []string{"U0OPS1"}, Channels: []string{"C0OPS"},
		Names: fakeNames{"U0OPS1": "ana", "C0OPS": "ops"},
	})
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#transcript .line[data-kind="answer"] blockquote`))); err != nil {
		t.Fatalf("the answer never showed: %v", err)
	}
	// Names arrive a moment after the line.
	for {
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#transcript .line[data-kind="answer"] .text`)))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(text, "@ana") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	check := func(js, want string) {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const t = document.querySelector('#transcript .line[data-kind="answer"] .text'); return `+js+` })()`))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", js, got, want)
		}
	}
	check(`t.querySelector("strong").textContent`, "bold")
	check(`t.querySelector("em").textContent`, "italic")
	check(`t.querySelector("s").textContent`, "strike")
	check(`t.querySelector("code").textContent`, "code")
	check(`t.querySelector("a").href + " " + t.querySelector("a").textContent`, "https://example.com/x?a=1&b=2 example")
	check(`[...t.querySelectorAll(".mention")].map(m => m.textContent).join(" ")`, "@ana #ops #dev @here")
	check(`t.querySelector("blockquote").textContent`, "quoted")
	check(`[...t.querySelectorAll(":scope ul li")].map(l => l.textContent).join("|")`, "one|two")
	check(`t.querySelector(":scope ol li").textContent`, "first")
	check(`t.querySelector("pre").textContent`, "block\n<b>not bold</b>")
	check(`String(t.querySelectorAll("img, b, script").length) + " " + String(window.pwned)`, "0 undefined")
	check(`String(t.querySelectorAll("a").length)`, "1")
	check(`t.lastChild.textContent`, "name <img src=x onerror=window.pwned=1> and click and snake_case_id")
}
