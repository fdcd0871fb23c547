// Package testenv starts the real servers that integration tests need
// (PostgreSQL, Chromium) on random 127.0.0.1 ports and stops them when the
// test, or the test binary, is done.
//
// Every helper skips the test with a message saying what to install when its
// server is missing, except when the environment variable CI is "true": there
// a missing server fails the test, so that a CI run never passes by skipping.
//
// A package whose tests call [Postgres] shares one server per test binary and
// should stop it from its TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Without that, a watchdog process stops the server shortly after the test
// binary exits.
package testenv

import (
	"net"
	"os"
	"sync"
	"testing"
)

// Main runs the tests of m, then stops every server this package started for
// the test binary and removes their files, and exits with the tests' status.
// Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	stopAll()
	os.Exit(code)
}

// stopFuncs holds what Main must undo when the test binary is done.
var (
	stopMu    sync.Mutex
	stopFuncs []func()
)

func atExit(f func()) {
	stopMu.Lock()
	defer stopMu.Unlock()
	stopFuncs = append(stopFuncs, f)
}

func stopAll() {
	stopMu.Lock()
	fs := stopFuncs
	stopFuncs = nil
	stopMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// missing reports a server that is not installed: a skip on a developer's
// machine, a failure in CI.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("testenv: "+format+" (CI=true, so a missing server is a failure, not a skip)", args...)
	} else {
		t.Skipf("testenv: "+format, args...)
	}
}

// FreeAddr returns a 127.0.0.1:PORT address that was free a moment ago.
// Another process may take the port before the caller binds it; servers that
// can listen on 127.0.0.1:0 themselves should do that instead.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatalf("testenv: find a free port: %v", err)
	}
	return addr
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", err
	}
	return addr, nil
}
