package switchboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
)

func TestAllowListEntries(t *testing.T) {
	t.Parallel()
	for _, good := range []string{"hooks.slack.com", "*.slack.com", "*", "http://*", "https://api.example.com:8443", "http://127.0.0.1:8080",
		"10.0.0.0/8", "fd00::/8", "http://[::1]:9000", "HTTPS://Hooks.Slack.com/"} {
		if msg := switchboard.CheckAllowEntry(good); msg != "" {
			t.Errorf("%q: %s", good, msg)
		}
	}
	for bad, want := range map[string]string{
		"":                       "is not a host",
		"ftp://hooks.slack.com":  `has scheme "ftp"`,
		"hooks.slack.com/path":   "is not a host",
		"user@hooks.slack.com":   "is not a host",
		"api.example.com:99999":  `has port "99999"`,
		"api.*.example.com":      "is not a host",
		"https://":               "is not a host",
		"hooks.slack.com?x=1":    "is not a host",
		"http://127.0.0.1:0":     `has port "0"`,
		"https://hooks slack":    "is not a host",
		"http://10.0.0.0/8/more": "is not a host",
	} {
		if msg := switchboard.CheckAllowEntry(bad); !strings.Contains(msg, want) {
			t.Errorf("%q: %q, want %q", bad, msg, want)
		}
	}
}

func TestAllowListCheckURL(t *testing.T) {
	t.Parallel()
	list, err := switchboard.NewAllowList("hooks.slack.com", "*.example.com", "http://127.0.0.1:8080", "https://api.example.org:8443", "10.1.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	for raw, allowed := range map[string]bool{
		"https://hooks.slack.com/commands/T1/1":     true,
		"https://HOOKS.slack.com./commands/T1/1":    true,
		"https://hooks.slack.com:444/x":             true, // no port in the entry: any port
		"http://hooks.slack.com/commands/T1/1":      false,
		"https://hooks.slack.com.evil.example/x":    false,
		"https://evilhooks.slack.com/x":             false,
		"https://a.example.com/x":                   true,
		"https://example.com/x":                     false,
		"http://127.0.0.1:8080/x":                   true,
		"https://127.0.0.1:8080/x":                  true,
		"http://127.0.0.1:8081/x":                   false,
		"http://localhost:8080/x":                   false,
		"https://api.example.org:8443/x":            true,
		"https://api.example.org/x":                 false,
		"https://10.1.2.3/x":                        true,
		"http://10.1.2.3/x":                         false,
		"https://[::ffff:10.1.2.3]/x":               true,
		"https://169.254.169.254/latest/meta-data/": false,
		"ftp://hooks.slack.com/x":                   false,
		"/relative":                                 false,
	} {
		u, _ := url.Parse(raw)
		err := list.CheckURL(u, "test.allow")
		if (err == nil) != allowed {
			t.Errorf("%s: allowed %v, want %v (%v)", raw, err == nil, allowed, err)
		}
		if err != nil && switchboard.ErrorCode(err) != switchboard.EFORBIDDEN {
			t.Errorf("%s: code %s", raw, switchboard.ErrorCode(err))
		}
	}
	star, _ := switchboard.NewAllowList("*")
	for raw, allowed := range map[string]bool{
		"https://api.example.com/x": true, "https://8.8.8.8/x": true, "http://api.example.com/x": false,
		"https://127.0.0.1/x": false, "https://169.254.169.254/x": false, "https://[fd00:ec2::254]/x": false, "https://100.100.100.200/x": false,
	} {
		u, _ := url.Parse(raw)
		if err := star.CheckURL(u, "test.allow"); (err == nil) != allowed {
			t.Errorf("*: %s: allowed %v, want %v", raw, err == nil, allowed)
		}
	}
}

func TestInternalAddresses(t *testing.T) {
	t.Parallel()
	for s, internal := range map[string]bool{
		"127.0.0.1": true, "127.8.9.10": true, "::1": true, "10.0.0.1": true, "172.16.0.1": true, "192.168.1.1": true,
		"169.254.169.254": true, "fe80::1": true, "fd00:ec2::254": true, "100.64.0.1": true, "100.100.100.200": true,
		"0.0.0.0": true, "::": true, "192.0.0.192": true, "224.0.0.1": true, "255.255.255.255": true, "::ffff:127.0.0.1": true,
		"64:ff9b::a9fe:a9fe": true, "8.8.8.8": false, "1.1.1.1": false, "2606:4700:4700::1111": false, "100.128.0.1": false,
	} {
		if got := switchboard.Internal(netip.MustParseAddr(s)); got != internal {
			t.Errorf("Internal(%s) = %v, want %v", s, got, internal)
		}
	}
}

// The client checks the URL, then the address a name resolved to when it
// connects, and follows no redirect.
func TestAllowListClient(t *testing.T) {
	t.Parallel()
	var hits []string
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits = append(hits, r.URL.Path)
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer peer.Close()
	port := strings.TrimPrefix(peer.URL, "http://127.0.0.1:")
	get := func(list *switchboard.AllowList, u string) (int, error) {
		resp, err := list.Client(5*time.Second, "test.allow").Get(u)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	listed, _ := switchboard.NewAllowList(peer.URL)
	if status, err := get(listed, peer.URL+"/ok"); err != nil || status != 200 {
		t.Errorf("a listed address: %d %v", status, err)
	}
	if status, err := get(listed, peer.URL+"/redirect"); err != nil || status != http.StatusFound {
		t.Errorf("a redirect: %d %v, want its 302 as the answer", status, err)
	}
	anyHTTP, _ := switchboard.NewAllowList("http://*")
	if _, err := get(anyHTTP, peer.URL+"/by-address"); err == nil || !strings.Contains(switchboard.ErrorMessage(err), "is not in test.allow") {
		t.Errorf("an internal address under *: %v", err)
	}
	_, err := get(anyHTTP, "http://localhost:"+port+"/by-name")
	if err == nil || !strings.Contains(switchboard.ErrorMessage(err), "may not connect to 127.0.0.1: it is a loopback") {
		t.Errorf("a name resolving to loopback: %v", err)
	}
	if strings.Join(hits, ",") != "/ok,/redirect" {
		t.Errorf("the peer got %q, want only /ok and /redirect", hits)
	}
	var nothing *switchboard.AllowList
	if _, err := get(nothing, peer.URL); err == nil {
		t.Errorf("an empty list let a request through")
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://api.example.com/v1/x?token=abc&page=2#frag": "https://api.example.com/v1/x?token=[redacted]&page=[redacted]",
		"https://user:pw@api.example.com/x":                  "https://user:xxxxx@api.example.com/x",
		"https://api.example.com/x":                          "https://api.example.com/x",
	} {
		u, _ := url.Parse(raw)
		if got := switchboard.RedactURL(u); got != want {
			t.Errorf("RedactURL(%s) = %s, want %s", raw, got, want)
		}
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	s := switchboard.NewSecrets([]string{"xoxb-bot-123456", "short", ""}, map[string]string{"TOKEN": "tok-abcdef", "file:/run/k": "key-with-tok-abcdef-inside"})
	for in, want := range map[string]string{
		"Bearer ${TOKEN}":                "Bearer tok-abcdef",
		"k=${file:/run/k}&${TOKEN}":      "k=key-with-tok-abcdef-inside&tok-abcdef",
		"literal $${TOKEN} and ${TOKEN}": "literal ${TOKEN} and tok-abcdef",
		"no references":                  "no references",
	} {
		if got, err := s.Resolve(in); err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := s.Resolve("${GONE}"); err == nil || !strings.Contains(switchboard.ErrorMessage(err), "${GONE}") {
		t.Errorf("an unknown reference: %v", err)
	}
	if got := s.Redact("bot xoxb-bot-123456, key-with-tok-abcdef-inside, tok-abcdef, short"); got != "bot [redacted], [redacted], [redacted], short" {
		t.Errorf("Redact = %q", got)
	}
	var none *switchboard.Secrets
	if none.Redact("x") != "x" || !none.Empty() {
		t.Errorf("nil Secrets are not empty")
	}
}
