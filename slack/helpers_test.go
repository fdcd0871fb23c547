package slack

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Slack's published example from "Verifying requests from Slack".
const (
	vectorSecret    = "8f742231b10e8888abcd99yyyzzz85a5"
	vectorTimestamp = "1531420618"
	vectorBody      = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	vectorSignature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
	vectorToken     = "xyzz0WbapA4vBCDEFasx0q6G"
)

// vectorNow is the test clock: shortly after the vector was signed.
var vectorNow = time.Unix(1531420618, 0).Add(42 * time.Second)

// sign returns the v0 signature Slack would send for body at ts.
func sign(secret, ts string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// commandsFake is a CommandHandler that records what it was asked.
type commandsFake struct {
	mu   sync.Mutex
	reqs []switchboard.Request
	ack  switchboard.Ack
	err  error
}

func (c *commandsFake) HandleCommand(_ context.Context, req switchboard.Request) (switchboard.Ack, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, req)
	return c.ack, c.err
}

func (c *commandsFake) requests() []switchboard.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]switchboard.Request(nil), c.reqs...)
}

// memDeliveries is a Deduper in memory, as the store's would behave.
type memDeliveries struct {
	mu   sync.Mutex
	seen map[string]bool
	err  error
}

func (d *memDeliveries) FirstDelivery(_ context.Context, key string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return false, d.err
	}
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	if d.seen[key] {
		return false, nil
	}
	d.seen[key] = true
	return true, nil
}

// forgettingDeliveries also implements ForgetDelivery.
type forgettingDeliveries struct{ memDeliveries }

func (d *forgettingDeliveries) ForgetDelivery(_ context.Context, key string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.seen, key)
	return nil
}

type auditLog struct {
	mu     sync.Mutex
	events []switchboard.AuditEvent
}

func (a *auditLog) Audit(_ context.Context, e switchboard.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
	return nil
}

func (a *auditLog) all() []switchboard.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]switchboard.AuditEvent(nil), a.events...)
}

type eventsFake struct {
	mu     sync.Mutex
	events []Event
	err    error
}

func (e *eventsFake) HandleEvent(_ context.Context, ev Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, ev)
	return e.err
}

func (e *eventsFake) all() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.events...)
}

type interactionsFake struct {
	mu  sync.Mutex
	got []Interaction
}

func (f *interactionsFake) HandleInteraction(_ context.Context, in Interaction) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, in)
	return nil
}

func (f *interactionsFake) all() []Interaction {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Interaction(nil), f.got...)
}

type served struct{ source, outcome string }

type meterFake struct {
	mu     sync.Mutex
	served []served
}

func (m *meterFake) RequestServed(source, outcome string, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.served = append(m.served, served{source, outcome})
}

func (m *meterFake) MessageSent(string) {}

func (m *meterFake) all() []served {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]served(nil), m.served...)
}

// testBundle holds a running handler and the fakes behind it.
type testBundle struct {
	srv          *httptest.Server
	commands     *commandsFake
	deliveries   Deduper
	audit        *auditLog
	events       *eventsFake
	interactions *interactionsFake
	meter        *meterFake
}

// setup starts the handler on a loopback httptest server. tweak may change
// the config before the handler is built.
func setup(t *testing.T, tweak func(*HandlerConfig)) *testBundle {
	t.Helper()
	b := &testBundle{
		commands:     &commandsFake{ack: switchboard.Ack{Text: "Starting tools (i-0123).", RunID: "run-1"}},
		deliveries:   &memDeliveries{},
		audit:        &auditLog{},
		events:       &eventsFake{},
		interactions: &interactionsFake{},
		meter:        &meterFake{},
	}
	cfg := HandlerConfig{
		SigningSecret:     vectorSecret,
		VerificationToken: vectorToken,
		NowFunc:           func() time.Time { return vectorNow },
		Commands:          b.commands,
		Deliveries:        b.deliveries,
		Auditor:           b.audit,
		Events:            b.events,
		Interactions:      b.interactions,
		Meter:             b.meter,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	b.deliveries = cfg.Deliveries
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	b.srv = httptest.NewServer(h)
	t.Cleanup(b.srv.Close)
	return b
}

// post sends body to path with the given headers and returns the status and
// response body.
func (b *testBundle) post(t *testing.T, path, contentType, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(got)
}

// postSigned signs body at the test clock and posts it.
func (b *testBundle) postSigned(t *testing.T, path, contentType, body string, extra map[string]string) (int, string) {
	t.Helper()
	ts := strconv.FormatInt(vectorNow.Unix(), 10)
	h := map[string]string{
		headerTimestamp: ts,
		headerSignature: sign(vectorSecret, ts, []byte(body)),
	}
	for k, v := range extra {
		h[k] = v
	}
	return b.post(t, path, contentType, body, h)
}

const formType = "application/x-www-form-urlencoded"

var errStoreDown = errors.New("store is down")
