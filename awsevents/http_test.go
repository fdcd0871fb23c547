package awsevents_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/awsevents"
)

const testSecret = "s3cret-shared-with-eventbridge"

func TestHandler(t *testing.T) {
	t.Parallel()
	event := sample(t, "ec2-state-change-terminated.json")
	tests := []struct {
		name    string
		method  string
		header  map[string]string
		body    []byte
		fail    error
		status  int
		want    string // in the body
		handled bool   // the event reached the handler
		audited bool   // a refusal was audited
	}{
		{name: "secret header", header: map[string]string{"X-Switchboard-Secret": testSecret}, body: event,
			status: http.StatusOK, want: `{"runs":["run-7bf73129-1428-4cd3-a780-95db273d1602"]}`, handled: true},
		{name: "bearer token", header: map[string]string{"Authorization": "Bearer " + testSecret}, body: event,
			status: http.StatusOK, want: `"runs"`, handled: true},
		{name: "no secret", body: event,
			status: http.StatusUnauthorized, want: "shared secret", audited: true},
		{name: "wrong secret", header: map[string]string{"X-Switchboard-Secret": testSecret + "x"}, body: event,
			status: http.StatusUnauthorized, want: "shared secret", audited: true},
		{name: "wrong bearer", header: map[string]string{"Authorization": "Bearer nope"}, body: event,
			status: http.StatusUnauthorized, audited: true},
		{name: "basic auth", header: map[string]string{"Authorization": "Basic " + testSecret}, body: event,
			status: http.StatusUnauthorized, audited: true},
		{name: "too large", header: map[string]string{"X-Switchboard-Secret": testSecret},
			body: bytes.Repeat([]byte(" "), awsevents.MaxBodyBytes+1), status: http.StatusRequestEntityTooLarge, want: "256 KiB"},
		{name: "bad JSON", header: map[string]string{"X-Switchboard-Secret": testSecret}, body: []byte(`{"id":`),
			status: http.StatusBadRequest, want: "not valid JSON"},
		{name: "not an event", header: map[string]string{"X-Switchboard-Secret": testSecret}, body: []byte(`{"hello":"world"}`),
			status: http.StatusBadRequest, want: "not an EventBridge event"},
		{name: "handler fails", header: map[string]string{"X-Switchboard-Secret": testSecret}, body: event, fail: errDown,
			status: http.StatusInternalServerError, want: "retry"},
		{name: "GET", method: http.MethodGet, header: map[string]string{"X-Switchboard-Secret": testSecret},
			status: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			events := &fakeEvents{fail: tt.fail}
			auditor := &fakeAuditor{}
			srv := httptest.NewServer(awsevents.Handler(testSecret, events, nil, &switchboard.RejectSampler{Auditor: auditor}))
			defer srv.Close()

			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, srv.URL+"/events/aws", bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var buf bytes.Buffer
			buf.ReadFrom(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(buf.String(), tt.want) {
				t.Errorf("got %d %s, want %d with %q", resp.StatusCode, buf.String(), tt.status, tt.want)
			}
			if !json.Valid(buf.Bytes()) {
				t.Errorf("body is not JSON: %s", buf.String())
			}
			got := events.received()
			if tt.handled != (len(got) == 1) {
				t.Fatalf("handler got %d events, want handled=%v", len(got), tt.handled)
			}
			if tt.handled && (got[0].DeliveryID != "7bf73129-1428-4cd3-a780-95db273d1602" || got[0].Trigger != awsevents.HTTPTrigger || got[0].Source != "aws") {
				t.Errorf("handler got %+v", got[0])
			}
			lines := auditor.lines()
			if tt.audited != (len(lines) == 1) {
				t.Fatalf("audit lines = %+v, want audited=%v", lines, tt.audited)
			}
			if tt.audited && (lines[0].Outcome != "unauthorized" || lines[0].Kind != switchboard.AuditRequest) {
				t.Errorf("audit line = %+v", lines[0])
			}
		})
	}
}

func TestHandlerRedelivery(t *testing.T) {
	t.Parallel()
	// EventBridge retries and may deliver twice: both deliveries reach the
	// handler with the same DeliveryID and are answered with the same run.
	events := &fakeEvents{}
	srv := httptest.NewServer(awsevents.Handler(testSecret, events, nil, nil))
	defer srv.Close()
	var answers []string
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(sample(t, "health-instance-retirement.json")))
		req.Header.Set("X-Switchboard-Secret", testSecret)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Runs []string }
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		answers = append(answers, strings.Join(body.Runs, ","))
	}
	if answers[0] == "" || answers[0] != answers[1] || events.started() != 1 {
		t.Errorf("answers %q with %d runs started, want the same run twice and one started", answers, events.started())
	}
	ids := []string{}
	for _, ev := range events.received() {
		ids = append(ids, ev.DeliveryID)
	}
	if !slices.Equal(ids, []string{"00fdef86-e930-cc2a-3bf7-1fd61ab3c89f", "00fdef86-e930-cc2a-3bf7-1fd61ab3c89f"}) {
		t.Errorf("delivery ids = %q", ids)
	}
}

func TestHandlerWithoutSecret(t *testing.T) {
	t.Parallel()
	// A missing secret in the configuration must not open the endpoint.
	events := &fakeEvents{}
	srv := httptest.NewServer(awsevents.Handler("", events, nil, nil))
	defer srv.Close()
	for _, header := range []map[string]string{{}, {"X-Switchboard-Secret": ""}, {"Authorization": "Bearer "}} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(sample(t, "ec2-state-change-terminated.json")))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%v: status %d, want 401", header, resp.StatusCode)
		}
	}
	if n := len(events.received()); n != 0 {
		t.Errorf("handler got %d events", n)
	}
}
