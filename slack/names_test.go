package slack

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
)

// fakeWebAPI answers Slack Web API methods by name and records each call's
// form.
type fakeWebAPI struct {
	*httptest.Server
	mu    sync.Mutex
	calls []fakeCall
}

type fakeCall struct {
	method string
	form   url.Values
}

func newFakeWebAPI(t *testing.T, answers map[string]func(form url.Values) string) *fakeWebAPI {
	t.Helper()
	s := &fakeWebAPI{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := strings.TrimPrefix(r.URL.Path, "/api/")
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.calls = append(s.calls, fakeCall{method, r.Form})
		s.mu.Unlock()
		answer, ok := answers[method]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer(r.Form))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *fakeWebAPI) all() []fakeCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fakeCall(nil), s.calls...)
}

// Names asks users.info and conversations.info once per id and keeps the
// answer; an id Slack does not know is asked again only after a while.
func TestNamesLooksUpAndCaches(t *testing.T) {
	t.Parallel()
	api := newFakeWebAPI(t, map[string]func(url.Values) string{
		"users.info": func(f url.Values) string {
			if f.Get("user") == "U0OPS1" {
				return `{"ok":true,"user":{"id":"U0OPS1","name":"ana.k","real_name":"Ana K","profile":{"display_name":"ana"}}}`
			}
			return `{"ok":false,"error":"user_not_found"}`
		},
		"conversations.info": func(f url.Values) string {
			return `{"ok":true,"channel":{"id":"` + f.Get("channel") + `","name":"ops"}}`
		},
	})
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	n := &Names{BotToken: "xoxb-test", APIURL: api.URL + "/api", HTTPClient: api.Client(), now: func() time.Time { return now }}
	ctx := context.Background()
	got := n.Names(ctx, []string{"U0OPS1", "C0OPS", "U0GONE", "not an id"})
	if len(got) != 2 || got["U0OPS1"] != "ana" || got["C0OPS"] != "ops" {
		t.Errorf("names = %v, want ana and ops", got)
	}
	if calls := len(api.all()); calls != 3 {
		t.Errorf("%d calls to Slack, want 3 (one per id that looks like Slack's)", calls)
	}
	n.Names(ctx, []string{"U0OPS1", "C0OPS", "U0GONE"})
	if calls := len(api.all()); calls != 3 {
		t.Errorf("%d calls to Slack after a second look, want the cached 3", calls)
	}
	now = now.Add(10 * time.Minute)
	n.Names(ctx, []string{"U0OPS1", "U0GONE"})
	if calls := api.all(); len(calls) != 4 || calls[3].form.Get("user") != "U0GONE" {
		t.Errorf("after 10 minutes calls = %+v, want the unknown id asked again and nothing else", calls)
	}
	if got := (&Names{}).Names(ctx, []string{"U0OPS1"}); len(got) != 0 {
		t.Errorf("without a bot token names = %v, want none", got)
	}
}

// A decided approval's request is rewritten for everyone: chat.update when
// it was posted with chat.postMessage, its response_url with
// replace_original when it went there; the buttons are gone and the text
// says who decided and when.
func TestUpdateApproval(t *testing.T) {
	t.Parallel()
	decided := time.Date(2026, 12, 2, 12, 3, 0, 0, time.UTC)
	ap := &switchboard.Approval{ID: "r-1-2", RunID: "r-1", Text: "<@U0OPS1> wants to restart tools. Approve?", State: switchboard.ApprovalApproved,
		Decisions: []switchboard.Decision{{User: "U0OPS2", Approve: true, At: decided, Source: "console"}}, DecidedAt: decided}
	want := "<@U0OPS1> wants to restart tools. Approve?\n✅ Approved by <@U0OPS2> at 12:03 UTC"

	t.Run("chat.update", func(t *testing.T) {
		t.Parallel()
		api := newFakeWebAPI(t, map[string]func(url.Values) string{
			"chat.update": func(url.Values) string { return `{"ok":true,"channel":"C0OPS","ts":"1700000000.000100"}` },
		})
		m := &Messenger{BotToken: "xoxb-test", APIURL: api.URL + "/api", HTTPClient: api.Client()}
		posted := switchboard.MessageRecord{Message: switchboard.Message{ChannelID: "C0OPS", ApprovalID: ap.ID}, Via: viaPostMessage, Ref: "1700000000.000100"}
		if err := m.UpdateApproval(context.Background(), posted, ap); err != nil {
			t.Fatal(err)
		}
		calls := api.all()
		if len(calls) != 1 || calls[0].method != "chat.update" {
			t.Fatalf("calls = %+v, want one chat.update", calls)
		}
		f := calls[0].form
		if f.Get("channel") != "C0OPS" || f.Get("ts") != "1700000000.000100" || f.Get("text") != want {
			t.Errorf("chat.update got channel %q ts %q text %q", f.Get("channel"), f.Get("ts"), f.Get("text"))
		}
		if blocks := f.Get("blocks"); strings.Contains(blocks, `"approve"`) || !strings.Contains(blocks, "Approved by") {
			t.Errorf("chat.update blocks = %s, want the decision and no buttons", blocks)
		}
	})
	t.Run("response_url", func(t *testing.T) {
		t.Parallel()
		srv := newResponseURLServer(t, http.StatusOK, nil, "ok")
		m := &Messenger{HTTPClient: srv.Client()}
		posted := switchboard.MessageRecord{Message: switchboard.Message{ChannelID: "C0OPS", ResponseURL: srv.URL, ApprovalID: ap.ID}, Via: viaResponseURL}
		if err := m.UpdateApproval(context.Background(), posted, ap); err != nil {
			t.Fatal(err)
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(srv.bodies) != 1 || !srv.bodies[0].ReplaceOriginal || srv.bodies[0].Text != want || len(srv.bodies[0].Blocks) != 0 {
			t.Errorf("response_url got %+v, want the decision replacing the original", srv.bodies)
		}
	})
	t.Run("timed out after a Slack click", func(t *testing.T) {
		t.Parallel()
		srv := newResponseURLServer(t, http.StatusOK, nil, "ok")
		m := &Messenger{HTTPClient: srv.Client()}
		late := *ap
		late.State, late.OnTimeout, late.Decisions = switchboard.ApprovalTimedOut, "deny", []switchboard.Decision{{User: "U0OPS2", Approve: true, At: decided, Source: "slack"}}
		posted := switchboard.MessageRecord{Message: switchboard.Message{ResponseURL: srv.URL}, Via: viaResponseURL}
		if err := m.UpdateApproval(context.Background(), posted, &late); err != nil {
			t.Fatal(err)
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(srv.bodies) != 1 || !strings.HasSuffix(srv.bodies[0].Text, "\n⏱ Nobody answered in time at 12:03 UTC; it counts as denied.") {
			t.Errorf("response_url got %+v", srv.bodies)
		}
	})
	t.Run("pending", func(t *testing.T) {
		t.Parallel()
		m := &Messenger{}
		pending := *ap
		pending.State = switchboard.ApprovalPending
		if err := m.UpdateApproval(context.Background(), switchboard.MessageRecord{Via: viaResponseURL, Message: switchboard.Message{ResponseURL: "http://127.0.0.1:1/"}}, &pending); err != nil {
			t.Errorf("a pending approval was updated: %v", err)
		}
	})
}

// A Slack that does not answer is asked once per call at most, and not
// again for a while.
func TestNamesWhenSlackIsDown(t *testing.T) {
	t.Parallel()
	api := newFakeWebAPI(t, map[string]func(url.Values) string{})
	api.Close() // nothing listens any more
	n := &Names{BotToken: "xoxb-test", APIURL: api.URL + "/api"}
	if got := n.Names(context.Background(), []string{"U0OPS1", "U0OPS2", "C0OPS"}); len(got) != 0 {
		t.Errorf("names = %v, want none", got)
	}
	// The first id found Slack gone; the others were not tried, and none
	// is tried again before nameMissTTL.
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.cache) != 3 {
		t.Errorf("cache = %v, want all three ids remembered as unknown", n.cache)
	}
}
