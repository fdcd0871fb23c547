package testenv

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Browser starts a headless Chromium (see [Chromium]; it skips or fails the
// same way when there is none) with [ChromiumFlags] and returns a chromedp
// context for it, already started, closed on t.Cleanup. Bound each step with
// a timeout derived from it, not the first one: the first action starts the
// browser, and a timeout on it would stop the browser with it.
func Browser(t testing.TB) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(Chromium(t))}
	for _, f := range ChromiumFlags() {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if hasValue {
			opts = append(opts, chromedp.Flag(name, value))
		} else {
			opts = append(opts, chromedp.Flag(name, true))
		}
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return browser
}
