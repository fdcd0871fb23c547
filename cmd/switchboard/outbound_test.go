package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// hitCounter is an HTTP server that only counts who reached it: a place
// Switchboard must never be sent.
type hitCounter struct {
	*httptest.Server
	mu   sync.Mutex
	hits []string
}

func newHitCounter(t *testing.T, h http.HandlerFunc) *hitCounter {
	c := &hitCounter{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.hits = append(c.hits, r.Method+" "+r.URL.String())
		c.mu.Unlock()
		if h != nil {
			h(w, r)
		}
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *hitCounter) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.hits...)
}

const outboundConfig = slackHeader + `clouds:
  main: { provider: sim }
groups:
  ops: [U0OPS1]
http:
  # the one internal service http steps may call, and any public host over
  # http or https (whose address is still checked when it connects)
  allow: ["%s", "http://*"]
workflows:
  fetch:
    trigger: { command: /fetch }
    allow: { users: [group:ops], channels: [C0OPS] }
    steps:
      - id: r
        http: { url: '{{ event.args[0] }}', timeout: 5s }
      - notify: { text: 'fetched {{ steps.r.status }}' }
`

// Where Switchboard may send requests is the config's to say, whatever a
// request or a user asks: a response_url outside slack.response_url_hosts
// is refused at the request and never posted to; an http step goes only to
// http.allow, a name that resolves to a loopback address is refused when it
// connects, metadata addresses are refused, and a redirect is not followed.
// Every refusal is a sentence in the channel and a line in the audit log.
func TestOutboundRequestsGoOnlyWhereAllowed(t *testing.T) {
	t.Parallel()
	internal := newHitCounter(t, nil) // an internal service nobody listed
	service := newHitCounter(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, internal.URL+"/followed", http.StatusFound)
		}
	})
	peer := newSlackPeer(t)
	s := startServer(t, peer.URL, serverOptions{config: fmt.Sprintf(outboundConfig, service.URL)})
	internalPort := strings.TrimPrefix(internal.URL, "http://127.0.0.1:")

	t.Run("response_url", func(t *testing.T) {
		for _, target := range []string{internal.URL + "/commands/T1/1", "https://hooks.slack.com.evil.example/commands/T1/2", "ftp://hooks.slack.com/x"} {
			req, _ := slashCommandAs(t, s, peer, "/fetch", "U0OPS1", "C0OPS", service.URL+"/ok")
			req = withForm(t, req, "response_url", target)
			status, ack := send(t, req)
			if status != 200 || !strings.Contains(ack, "Switchboard did nothing: this request asks for its answer at an address that is not Slack's") {
				t.Errorf("a command answering to %s was acked %d %q", target, status, ack)
			}
		}
		// A button press naming another answer address is refused too.
		clickTo(t, s, internal.URL+"/actions/T1/1", "x", "U0OPS1", "approve")
		audit := auditLines(t, s)
		if n := strings.Count(audit, "its response_url points outside Slack"); n != 4 {
			t.Errorf("want 4 audited response_url refusals, got %d:\n%s", n, audit)
		}
	})

	t.Run("http step", func(t *testing.T) {
		cases := []struct{ target, answer string }{
			{service.URL + "/ok", "fetched 200"},
			// An address not listed, by its number: refused before any
			// connection.
			{internal.URL + "/by-address", "may not call http://127.0.0.1:" + internalPort + ": it is not in http.allow"},
			// A name allowed by "http://*" that resolves to loopback:
			// refused when it connects.
			{"http://localhost:" + internalPort + "/by-name", "may not connect to 127.0.0.1: it is a loopback, private, link-local or metadata address"},
			{"http://169.254.169.254/latest/meta-data/iam/security-credentials/", "may not call http://169.254.169.254: it is not in http.allow"},
			{"http://[::ffff:169.254.169.254]/latest/", "it is not in http.allow"},
			{"http://100.100.100.200/latest/meta-data/", "it is not in http.allow"},
			{"file:///etc/passwd", "is not an absolute http(s) URL"},
			// An allowed service that redirects inward: the 302 is its
			// answer, not followed.
			{service.URL + "/redirect", "answered 302 Found"},
		}
		for _, c := range cases {
			req, path := slashCommandAs(t, s, peer, "/fetch", "U0OPS1", "C0OPS", c.target)
			if status, ack := send(t, req); status != 200 {
				t.Fatalf("/fetch %s: ack %d %q", c.target, status, ack)
			}
			got := peer.waitAnswers(t, path, 1)
			if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), c.answer) {
				t.Errorf("/fetch %s answered %q, want %q", c.target, got, c.answer)
			}
		}
		if hits := internal.got(); len(hits) > 0 {
			t.Errorf("the internal service was reached: %q", hits)
		}
		audit := auditLines(t, s)
		for _, want := range []string{`"subject":"http GET http://127.0.0.1:` + internalPort + `/by-address","outcome":"refused"`,
			`"subject":"http GET http://localhost:` + internalPort + `/by-name","outcome":"refused"`,
			`"subject":"http GET http://169.254.169.254/latest/meta-data/iam/security-credentials/","outcome":"refused"`} {
			if !strings.Contains(audit, want) {
				t.Errorf("the audit log lacks %s:\n%s", want, audit)
			}
		}
	})
	if hits := internal.got(); len(hits) > 0 {
		t.Errorf("the internal service was reached: %q", hits)
	}
}

// withForm returns req with one form field of its signed body changed, and
// signed again.
func withForm(t *testing.T, req *http.Request, key, value string) *http.Request {
	t.Helper()
	raw, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	form.Set(key, value)
	body := form.Encode()
	out, _ := http.NewRequest(req.Method, req.URL.String(), strings.NewReader(body))
	sign(out, body, time.Now())
	return out
}
