package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboardhq/switchboard"
)

// fakeSocketSlack impersonates the two halves of Socket Mode: the Web API
// method apps.connections.open and the WebSocket it hands out.
type fakeSocketSlack struct {
	srv   *httptest.Server
	conns chan *websocket.Conn
}

func newFakeSocketSlack(t *testing.T, openAnswer string) *fakeSocketSlack {
	t.Helper()
	f := &fakeSocketSlack{conns: make(chan *websocket.Conn, 4)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/apps.connections.open", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer xapp-1-test" {
			io.WriteString(w, `{"ok":false,"error":"not_authed"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if openAnswer != "" {
			io.WriteString(w, openAnswer)
			return
		}
		fmt.Fprintf(w, `{"ok":true,"url":"ws://%s/link"}`, r.Host)
	})
	// The client sends Origin: https://api.slack.com, as Slack expects.
	upgrader := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	mux.HandleFunc("GET /link", func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		f.conns <- conn
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// within bounds a wait so a broken client fails the test instead of hanging it.
const within = 10 * time.Second

func (f *fakeSocketSlack) accept(t *testing.T) *websocket.Conn {
	t.Helper()
	select {
	case conn := <-f.conns:
		t.Cleanup(func() { conn.Close() })
		return conn
	case <-time.After(within):
		t.Fatal("the client never opened the WebSocket")
		return nil
	}
}

type socketAck struct {
	EnvelopeID string          `json:"envelope_id"`
	Payload    json.RawMessage `json:"payload"`
}

// exchange sends one envelope and reads the client's ack.
func exchange(t *testing.T, conn *websocket.Conn, envelope string) socketAck {
	t.Helper()
	if err := conn.WriteMessage(websocket.TextMessage, []byte(envelope)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(within))
	var ack socketAck
	if err := conn.ReadJSON(&ack); err != nil {
		t.Fatalf("reading the ack of %s: %v", envelope, err)
	}
	return ack
}

func TestSocketMode(t *testing.T) {
	t.Parallel()
	slack := newFakeSocketSlack(t, "")
	commands := &commandsFake{ack: switchboard.Ack{Text: "Starting tools (i-0123)."}}
	events := &eventsFake{}
	meter := &meterFake{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunSocketMode(ctx, SocketConfig{
			AppToken:   "xapp-1-test",
			BotToken:   "xoxb-test",
			APIURL:     slack.srv.URL + "/api",
			Commands:   commands,
			Deliveries: &memDeliveries{},
			Events:     events,
			Meter:      meter,
			Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
			NowFunc:    func() time.Time { return vectorNow },
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("RunSocketMode = %v, want nil after cancel", err)
			}
		case <-time.After(within):
			t.Error("RunSocketMode did not return after cancel")
		}
	})

	conn := slack.accept(t)
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello","num_connections":1,"connection_info":{"app_id":"A1"}}`)); err != nil {
		t.Fatal(err)
	}

	ack := exchange(t, conn, `{"envelope_id":"env-1","type":"slash_commands","accepts_response_payload":true,"payload":`+
		`{"command":"/ec2","text":"start tools","user_id":"U1","user_name":"alice","channel_id":"C1","team_id":"T1","trigger_id":"1.2.3","response_url":"https://hooks.slack.com/commands/x"}}`)
	if ack.EnvelopeID != "env-1" {
		t.Fatalf("ack = %+v, want env-1", ack)
	}
	var reply ackBody
	if err := json.Unmarshal(ack.Payload, &reply); err != nil || reply != (ackBody{"ephemeral", "Starting tools (i-0123)."}) {
		t.Errorf("ack payload = %s (%v)", ack.Payload, err)
	}
	reqs := commands.requests()
	if len(reqs) != 1 || reqs[0].Source != "socket" || reqs[0].Command != "/ec2" || reqs[0].Text != "start tools" ||
		reqs[0].DeliveryID != "1.2.3" || reqs[0].ResponseURL != "https://hooks.slack.com/commands/x" {
		t.Fatalf("requests = %+v", reqs)
	}

	// The same event twice (Slack redelivers unacked envelopes), then one
	// whose inner type slack-go does not know.
	for i, env := range []string{
		`{"envelope_id":"env-2","type":"events_api","payload":` + mentionEvent + `}`,
		`{"envelope_id":"env-3","type":"events_api","retry_attempt":1,"retry_reason":"timeout","payload":` + mentionEvent + `}`,
		`{"envelope_id":"env-4","type":"events_api","payload":{"type":"event_callback","event_id":"Ev9","event":{"type":"brand_new_thing"}}}`,
	} {
		if ack := exchange(t, conn, env); ack.EnvelopeID != fmt.Sprintf("env-%d", i+2) {
			t.Fatalf("ack = %+v, want env-%d", ack, i+2)
		}
	}
	got := events.all()
	if len(got) != 2 || got[0].ID != "Ev08MFMKH6" || got[0].Source != "socket" || got[1].ID != "Ev9" || got[1].Type != "brand_new_thing" {
		t.Fatalf("events = %+v, want Ev08MFMKH6 once, then Ev9", got)
	}
	outcomes := meter.all()
	want := []served{{"socket", "ok"}, {"socket", "ok"}, {"socket", "duplicate"}, {"socket", "ok"}}
	if fmt.Sprint(outcomes) != fmt.Sprint(want) {
		t.Errorf("meter = %v, want %v", outcomes, want)
	}
}

func TestSocketModeRefusedToken(t *testing.T) {
	t.Parallel()
	slack := newFakeSocketSlack(t, `{"ok":false,"error":"invalid_auth"}`)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	err := RunSocketMode(ctx, SocketConfig{
		AppToken:   "xapp-1-test",
		APIURL:     slack.srv.URL + "/api/",
		Commands:   &commandsFake{},
		Deliveries: &memDeliveries{},
	})
	if err == nil || !strings.Contains(err.Error(), "slack.app_token") || !strings.Contains(err.Error(), "invalid_auth") {
		t.Fatalf("err = %v, want one naming slack.app_token and invalid_auth", err)
	}
}

func TestSocketModeValidates(t *testing.T) {
	t.Parallel()
	err := RunSocketMode(context.Background(), SocketConfig{Commands: &commandsFake{}, Deliveries: &memDeliveries{}})
	if err == nil || !strings.Contains(err.Error(), "slack.app_token") {
		t.Fatalf("err = %v, want one naming slack.app_token", err)
	}
}
