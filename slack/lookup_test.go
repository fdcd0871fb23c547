package slack

import (
	"context"
	"encoding/json"
	"fmt"
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

// channelFake is a Slack that keeps one channel's history: chat.postMessage
// and in_channel response_url posts go in, conversations.history reads it.
type channelFake struct {
	*httptest.Server
	mu      sync.Mutex
	history []map[string]any
	posts   int
}

func newChannelFake(t *testing.T) *channelFake {
	f := &channelFake{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		ts := fmt.Sprintf("%d.%06d", time.Now().Unix(), len(f.history)+1)
		switch r.URL.Path {
		case "/api/conversations.history":
			form, _ := url.ParseQuery(string(body))
			msgs := f.history
			if form.Get("include_all_metadata") != "1" {
				msgs = nil // this test always asks for it
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "messages": msgs})
		case "/api/chat.postMessage":
			form, _ := url.ParseQuery(string(body))
			var md any
			_ = json.Unmarshal([]byte(form.Get("metadata")), &md)
			f.posts++
			f.history = append(f.history, map[string]any{"ts": ts, "text": form.Get("text"), "bot_id": "B1", "metadata": md})
			fmt.Fprintf(w, `{"ok":true,"channel":"C1","ts":%q}`, ts)
		default: // a response_url
			var m struct {
				Text string `json:"text"`
			}
			_ = json.Unmarshal(body, &m)
			f.posts++
			f.history = append(f.history, map[string]any{"ts": ts, "text": m.Text, "bot_id": "B1"})
			fmt.Fprint(w, "ok")
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// A message whose earlier post may have landed (the process died before
// recording it) is looked for in the channel first: found, it is not
// posted again; not found, it is posted.
func TestMessengerLooksBeforePostingAgain(t *testing.T) {
	ctx := context.Background()
	f := newChannelFake(t)
	m := &Messenger{BotToken: "xoxb-1", APIURL: f.URL + "/api/"}
	viaAPI := switchboard.Message{RunID: "r1", Key: "done", ChannelID: "C1", Text: "tools is running", RequestedAt: time.Now()}
	viaURL := switchboard.Message{RunID: "r2", Key: "done", ChannelID: "C1", Text: "web-1 is running", RequestedAt: time.Now(),
		ResponseURL: f.URL + "/commands/1"}
	for _, msg := range []switchboard.Message{viaAPI, viaURL} {
		first, err := m.Deliver(ctx, msg, nil)
		if err != nil {
			t.Fatal(err)
		}
		msg.MaybeSent = time.Now().Add(-time.Second)
		again, err := m.Deliver(ctx, msg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if again.Via != first.Via || again.Ref != first.Ref {
			t.Errorf("%s: found %+v, want the first delivery %+v", msg.RunID, again, first)
		}
	}
	if f.posts != 2 {
		t.Errorf("%d posts, want 2: a message found in the channel is not posted again", f.posts)
	}
	// Not in the channel (the earlier attempt never reached Slack): posted,
	// although another run's message with the same text is there.
	lost := switchboard.Message{RunID: "r3", Key: "done", ChannelID: "C1", Text: "tools is running", MaybeSent: time.Now()}
	if _, err := m.Deliver(ctx, lost, nil); err != nil {
		t.Fatal(err)
	}
	if f.posts != 3 {
		t.Errorf("%d posts, want 3: a message not found is posted", f.posts)
	}
	// It names its run and message, for the next lookup.
	f.mu.Lock()
	last := f.history[len(f.history)-1]
	f.mu.Unlock()
	if md, _ := last["metadata"].(map[string]any); md == nil || !strings.Contains(fmt.Sprint(md["event_payload"]), "r3") {
		t.Errorf("chat.postMessage metadata = %v, want the run and message named", last["metadata"])
	}
}
