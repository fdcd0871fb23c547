package main

import (
	"context"
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

// writeArtifact keeps a file a developer may open after the test (a
// screenshot): in SWITCHBOARD_ARTIFACTS, or the test's temporary directory.
func writeArtifact(t *testing.T, name string, data []byte) {
	t.Helper()
	dir := os.Getenv("SWITCHBOARD_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// demoConfig is the built-in demo's config on the test's address, data
// directory and store, with the simulated cloud's transitions shortened.
func demoConfig(t *testing.T) string {
	t.Helper()
	demo, err := os.ReadFile(filepath.Join("..", "..", "config", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(demo), "listen: 127.0.0.1:8080", "listen: {{listen}}\ndata_dir: {{data_dir}}\nstore: {{store}}", 1)
	cfg = strings.Replace(cfg, "pending_duration: 3s", "pending_duration: 300ms", 1)
	return strings.Replace(cfg, "stopping_duration: 3s", "stopping_duration: 300ms", 1)
}

// The console's Audit tab of the real binary: newest first, narrowed by
// actor, kind, outcome and run, with ids on one line and room for Detail.
// Screenshots: console-audit.png, console-audit-run.png.
func TestConsoleAuditFilters(t *testing.T) {
	t.Parallel()
	browser := testenv.Browser(t)
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{config: demoConfig(t)})

	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	pick := func(id, value string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(chromedp.SetValue(chromedp.ID(id), value),
			chromedp.Evaluate[chromedp.Void](`document.getElementById("`+id+`").dispatchEvent(new Event("change"))`))
	}
	for i, step := range []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(s.consoleURL("/")),
		chromedp.EmulateViewport(1400, 900),
		chromedp.WaitVisible(chromedp.ID("input")),
		pick("user", "U0OPS1"),
		pick("channel", "C0OPS"),
		chromedp.SendKeys(chromedp.ID("input"), "/ec2 start tools"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#transcript .line[data-kind="answer"]`)),
		pick("user", "U0DEV1"),
		chromedp.SendKeys(chromedp.ID("input"), "/ec2 stop tools"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#transcript .line[data-user="U0DEV1"]`)),
		chromedp.Click(chromedp.ID("tab-audit")),
		chromedp.WaitVisible(chromedp.CSS(`#audit tbody tr`)),
	} {
		if err := chromedp.Do(ctx, step); err != nil {
			t.Fatalf("drive the console, step %d: %v\n%s", i, err, s.logs)
		}
	}
	rows := func(want func([][]string) bool) [][]string {
		t.Helper()
		var got [][]string
		var err error
		for {
			got, err = chromedp.Run(ctx, chromedp.Evaluate[[][]string](`[...document.querySelectorAll("#audit tbody tr")].map(tr => [tr.dataset.kind, tr.dataset.actor, tr.dataset.outcome, tr.dataset.run])`))
			if err != nil {
				t.Fatal(err)
			}
			if want(got) {
				return got
			}
			if ctx.Err() != nil {
				t.Fatalf("the audit table never showed what was wanted: %q", got)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	const kind, actor, outcome, runID = 0, 1, 2, 3
	// Newest first: U0DEV1's refusal came last.
	rows(func(r [][]string) bool { return len(r) > 0 && r[0][actor] == "U0DEV1" && r[0][outcome] == "refused" })

	// Ids stay on one line and Detail is wide enough to read.
	layout, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](`(() => {
		let broken = 0;
		for (const td of document.querySelectorAll("#audit td.id, #audit td.kind, #audit td.outcome, #audit td.time, #audit .nobr")) {
			const texts = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
			for (let n = texts.nextNode(); n; n = texts.nextNode()) {
				const r = document.createRange(); r.selectNodeContents(n);
				const tops = new Set([...r.getClientRects()].map(c => Math.round(c.top)));
				if (tops.size > 1) broken++;
			}
		}
		const detail = document.querySelector("#audit th.detail").getBoundingClientRect().width;
		return {broken, detail};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if layout["broken"] != 0 || layout["detail"] < 200 {
		t.Errorf("audit layout: %v cells broken over lines, Detail %vpx wide (want none, and at least 200px)", layout["broken"], layout["detail"])
	}

	// Outcome: only refusals.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#audit-filters input[name="outcome"]`), "refused"+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	rows(func(r [][]string) bool {
		for _, row := range r {
			if row[outcome] != "refused" {
				return false
			}
		}
		return len(r) == 1 && r[0][actor] == "U0DEV1"
	})
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	writeArtifact(t, "console-audit.png", png)

	// Actor and kind: U0OPS1's actions only.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#audit-filters button[type="reset"]`)),
		chromedp.SendKeys(chromedp.CSS(`#audit-filters input[name="actor"]`), "U0OPS1"+kb.Enter),
		pickIn(`#audit-filters select[name="kind"]`, "action"),
	)
	if err != nil {
		t.Fatal(err)
	}
	got := rows(func(r [][]string) bool {
		for _, row := range r {
			if row[actor] != "U0OPS1" || row[kind] != "action" {
				return false
			}
		}
		return len(r) > 0
	})
	t.Logf("U0OPS1's actions: %q", got)

	// A run id narrows the log to that run.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#audit-filters button[type="reset"]`))); err != nil {
		t.Fatal(err)
	}
	// All lines again (lines written since, such as a scheduled run's, may
	// come first now).
	rows(func(r [][]string) bool {
		return slices.ContainsFunc(r, func(row []string) bool { return row[actor] == "U0DEV1" }) &&
			slices.ContainsFunc(r, func(row []string) bool { return row[actor] == "U0OPS1" })
	})
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#audit tr[data-actor="U0OPS1"][data-kind="action"][data-run^="r-"] .run`))); err != nil {
		t.Fatal(err)
	}
	run, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`#audit-filters input[name="run"]`)))
	if err != nil || !strings.HasPrefix(run, "r-") {
		t.Fatalf("clicking a run id set the run filter to %q (%v)", run, err)
	}
	rows(func(r [][]string) bool {
		for _, row := range r {
			if row[runID] != run {
				return false
			}
		}
		return len(r) > 1
	})
	png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	writeArtifact(t, "console-audit-run.png", png)
}

// pickIn chooses a value in a select and lets the page know.
func pickIn(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.SetValue(chromedp.CSS(sel), value),
		chromedp.Evaluate[chromedp.Void](`document.querySelector(`+"`"+sel+"`"+`).dispatchEvent(new Event("change", {bubbles: true}))`))
}
