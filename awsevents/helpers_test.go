package awsevents_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeEvents is an EventHandler that records every event and, like the real
// one, starts one run per DeliveryID and answers a repeat with the first
// run. With fail set it records nothing and fails.
type fakeEvents struct {
	mu     sync.Mutex
	fail   error
	events []switchboard.Event
	runs   map[string]string // DeliveryID -> run id
}

func (f *fakeEvents) HandleEvent(_ context.Context, ev switchboard.Event) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	f.events = append(f.events, ev)
	if f.runs == nil {
		f.runs = make(map[string]string)
	}
	run, ok := f.runs[ev.DeliveryID]
	if !ok {
		run = "run-" + ev.DeliveryID
		f.runs[ev.DeliveryID] = run
	}
	return []string{run}, nil
}

func (f *fakeEvents) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeEvents) received() []switchboard.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]switchboard.Event(nil), f.events...)
}

func (f *fakeEvents) started() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.runs)
}

var errDown = errors.New("store is down")

// fakeAuditor records audit lines.
type fakeAuditor struct {
	mu     sync.Mutex
	events []switchboard.AuditEvent
}

func (a *fakeAuditor) Audit(_ context.Context, e switchboard.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
	return nil
}

func (a *fakeAuditor) lines() []switchboard.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]switchboard.AuditEvent(nil), a.events...)
}

// sample returns a file of testdata.
func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
