package testenv

import (
	"os"
	"os/exec"
	"sync"
	"testing"
)

// Chromium returns the path of a Chromium or Chrome binary. Start it with
// [ChromiumFlags].
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missing(t, "no Chromium in PATH (looked for chromium, chromium-browser, google-chrome); install it with `apt-get install -y chromium`")
	return ""
}

// ChromiumFlags returns the command-line flags Chromium must be started with
// here, each as "--name" or "--name=value", including a new empty
// --user-data-dir (removed by [Main]). Without the flags that turn off
// background networking, component updates and sync, Chromium keeps trying to
// reach Google's servers, which on a closed network only slows the tests.
//
// With chromedp, pass each one as chromedp.Flag(name, value), value being true
// for a flag without "=".
func ChromiumFlags() []string {
	flags := []string{
		"--headless",
		"--no-sandbox", // we often run as root in a container, where the sandbox cannot start
		"--disable-gpu",
		"--disable-quic",
		"--no-first-run",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-sync",
		"--disable-default-apps",
		"--disable-extensions",
		"--no-default-browser-check",
		"--metrics-recording-only",
		"--disable-dev-shm-usage", // containers have a small /dev/shm
	}
	if dir, err := chromiumProfile(); err == nil {
		flags = append(flags, "--user-data-dir="+dir)
	}
	return flags
}

var (
	profilesOnce sync.Once
	profilesRoot string
	profilesErr  error
)

// chromiumProfile makes an empty profile directory under one root per test
// binary, so that Main can remove them all at once.
func chromiumProfile() (string, error) {
	profilesOnce.Do(func() {
		profilesRoot, profilesErr = os.MkdirTemp("", "testenv-chromium-")
		if profilesErr == nil {
			atExit(func() { os.RemoveAll(profilesRoot) })
		}
	})
	if profilesErr != nil {
		return "", profilesErr
	}
	return os.MkdirTemp(profilesRoot, "profile-")
}
