package engine_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/engine"
	"github.com/switchboardhq/switchboard/steps"
)

// A plan keeps ${...} references; the step gets their values when it runs,
// in the text the configuration wrote only (a user who types a reference
// gets it back as typed), and what the run says, audits and keeps is
// redacted, even when a peer echoes a secret back.
func TestSecretReferencesResolveOnlyWhenTheStepRuns(t *testing.T) {
	t.Parallel()
	var gotAuth, gotQuery, gotBody string
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		body, _ := io.ReadAll(r.Body)
		gotAuth, gotQuery, gotBody = r.Header.Get("Authorization"), r.URL.Query().Get("key"), string(body)
		io.WriteString(w, `{"echo":"`+gotAuth+`"}`) // a careless peer
	}))
	defer peer.Close()
	allow, err := switchboard.NewAllowList(peer.URL)
	if err != nil {
		t.Fatal(err)
	}
	secrets := switchboard.NewSecrets(nil, map[string]string{"TOKEN": "tok-secret-5678", "KEY": "key-secret-1234"})
	runner := &engine.Runner{Steps: switchboard.NewRegistry(steps.Builtin()...), Secrets: secrets, HTTPClient: allow.Client(5*time.Second, "http.allow")}
	with := func(v map[string]any) json.RawMessage { b, _ := json.Marshal(v); return b }
	run := &switchboard.Run{ID: "r1", Workflow: "w", Request: switchboard.Request{Text: "${TOKEN}", ChannelID: "C1"}, Plan: []switchboard.Step{
		{ID: "call", Kind: "http", With: with(map[string]any{"method": "POST", "url": peer.URL + "/ok?key=${KEY}",
			"headers": map[string]any{"Authorization": "Bearer ${TOKEN}"}, "body": "{{ event.text }} and ${TOKEN}"})},
		{Kind: "notify", With: with(map[string]any{"text": "peer said {{ steps.call.body }}"})},
		{Kind: "http", With: with(map[string]any{"url": peer.URL + "/fail?key=${KEY}"})},
	}}
	plan, _ := json.Marshal(run.Plan)
	out, err := runner.Advance(context.Background(), run, nopSaver{})
	if err != nil {
		t.Fatal(err)
	}
	if gotQuery != "key-secret-1234" || gotAuth != "Bearer tok-secret-5678" {
		t.Errorf("the peer got key %q and %q: the references were not resolved", gotQuery, gotAuth)
	}
	if gotBody != "${TOKEN} and tok-secret-5678" {
		t.Errorf("the peer got body %q: what the user typed must stay as typed", gotBody)
	}
	after, _ := json.Marshal(run)
	if string(plan) != mustJSON(t, run.Plan) {
		t.Errorf("the plan changed:\n%s\n%s", plan, mustJSON(t, run.Plan))
	}
	said, _ := json.Marshal(out)
	for _, text := range []string{string(after), string(said)} {
		if strings.Contains(text, "tok-secret-5678") || strings.Contains(text, "key-secret-1234") {
			t.Errorf("a secret is kept or said: %s", text)
		}
	}
	if run.State != switchboard.RunFailed || !strings.Contains(run.Error, "/fail?key=[redacted] answered 403 Forbidden") {
		t.Errorf("run = %s %q", run.State, run.Error)
	}
	if !strings.Contains(string(said), `peer said {\"echo\":\"Bearer [redacted]\"}`) {
		t.Errorf("messages = %s", said)
	}
}

// Without http.allow, an http step calls nothing, says so and audits it.
func TestHTTPStepWithoutAllowList(t *testing.T) {
	t.Parallel()
	runner := &engine.Runner{Steps: switchboard.NewRegistry(steps.Builtin()...)}
	run := &switchboard.Run{ID: "r1", Workflow: "w", Plan: []switchboard.Step{{Kind: "http", With: json.RawMessage(`{"url":"https://api.example.com/x?token=t0k"}`)}}}
	out, err := runner.Advance(context.Background(), run, nopSaver{})
	if err != nil {
		t.Fatal(err)
	}
	want := "http GET https://api.example.com/x?token=[redacted] was refused: Switchboard may not call any URL: the config has no http.allow list."
	if run.Error != want {
		t.Errorf("error = %q, want %q", run.Error, want)
	}
	var refused bool
	for _, a := range out.Audit {
		refused = refused || a.Outcome == "refused" && a.Subject == "http GET https://api.example.com/x?token=[redacted]"
	}
	if !refused {
		t.Errorf("no refusal audited: %+v", out.Audit)
	}
}

type nopSaver struct{}

func (nopSaver) SaveRun(context.Context, *switchboard.Run) error { return nil }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
