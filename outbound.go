package switchboard

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Switchboard sends requests of its own in two places: answers to Slack's
// response_url (a URL a signed request names) and the http workflow step
// (a URL a workflow names, perhaps built from what a user typed). Both go
// only where the config allows: an AllowList. The http step's client also
// checks, at connect time, the address a name resolved to, so that a name
// that resolves to a private address (DNS rebinding) cannot reach one.

// AllowList is where Switchboard may send a request. Each entry is one of:
//
//	api.example.com            https to that host, any port
//	*.example.com              https to any host under example.com
//	*                          https to any host (addresses still checked)
//	https://api.example.com:8443  that scheme, host and port
//	http://127.0.0.1:8080      http (or https) to that address and port
//	10.20.0.0/16               https to addresses in that range
//
// An entry without a scheme allows https only; an http:// entry allows http
// and https. An entry without a port allows any port. Loopback, private,
// link-local, CGNAT and cloud-metadata addresses are refused at connect
// time unless an entry names them (an address or a range), whatever the
// name that resolved to them.
type AllowList struct {
	entries []allowEntry
}

type allowEntry struct {
	insecure bool         // http allowed as well as https
	host     string       // a lower-case name, "*.suffix" or "*"; "" for addresses
	prefix   netip.Prefix // the addresses an entry names, when it names some
	port     string       // "" for any port
}

// NewAllowList parses entries; the error of the first bad one names it.
func NewAllowList(entries ...string) (*AllowList, error) {
	a := &AllowList{}
	for _, s := range entries {
		e, err := parseAllowEntry(s)
		if err != nil {
			return nil, fmt.Errorf("%q %s", s, err)
		}
		a.entries = append(a.entries, e)
	}
	return a, nil
}

// CheckAllowEntry says what is wrong with one allow-list entry, or "".
func CheckAllowEntry(s string) string {
	if _, err := parseAllowEntry(s); err != nil {
		return err.Error()
	}
	return ""
}

const allowEntryForm = "is not a host, a scheme://host:port or an address range; write it like hooks.slack.com, *.example.com, http://127.0.0.1:8080 or 10.0.0.0/8"

func parseAllowEntry(s string) (allowEntry, error) {
	var e allowEntry
	rest := strings.TrimSpace(s)
	if scheme, after, ok := strings.Cut(rest, "://"); ok {
		switch strings.ToLower(scheme) {
		case "http":
			e.insecure = true
		case "https":
		default:
			return e, fmt.Errorf("has scheme %q; only http:// and https:// can be allowed", scheme)
		}
		rest = strings.TrimSuffix(after, "/")
	}
	if rest == "" || strings.ContainsAny(rest, "/?#@ \t") && !isPrefix(rest) {
		return e, fmt.Errorf("%s", allowEntryForm)
	}
	if p, err := netip.ParsePrefix(rest); err == nil {
		e.prefix = p.Masked()
		return e, nil
	}
	host := rest
	if h, port, err := net.SplitHostPort(rest); err == nil {
		n, perr := strconv.Atoi(port)
		if perr != nil || n < 1 || n > 65535 {
			return e, fmt.Errorf("has port %q; a port is a number from 1 to 65535", port)
		}
		host, e.port = h, strconv.Itoa(n)
	}
	host = strings.Trim(host, "[]")
	if addr, err := netip.ParseAddr(host); err == nil {
		addr = addr.Unmap()
		e.prefix = netip.PrefixFrom(addr, addr.BitLen())
		return e, nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name != "*" {
		label := strings.TrimPrefix(name, "*.")
		if label == "" || strings.ContainsAny(label, "*:[]") {
			return e, fmt.Errorf("%s", allowEntryForm)
		}
	}
	e.host = name
	return e, nil
}

func isPrefix(s string) bool {
	_, err := netip.ParsePrefix(s)
	return err == nil
}

// allows reports whether the entry lets a request go to scheme://host:port.
func (e allowEntry) allows(scheme, host, port string) bool {
	if scheme != "https" && !(scheme == "http" && e.insecure) {
		return false
	}
	if e.port != "" && e.port != port {
		return false
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		addr = addr.Unmap()
		return e.prefix.IsValid() && e.prefix.Contains(addr) || e.host == "*" && !Internal(addr)
	}
	switch {
	case e.host == "*":
		return true
	case strings.HasPrefix(e.host, "*."):
		return strings.HasSuffix(host, e.host[1:])
	}
	return e.host != "" && host == e.host
}

// names reports whether the entry names addr (with port) itself, which is
// what lets a request reach an internal address.
func (e allowEntry) names(addr netip.Addr, port string) bool {
	return e.prefix.IsValid() && e.prefix.Contains(addr) && (e.port == "" || e.port == port)
}

// CheckURL returns nil when the list allows a request to u, and otherwise
// an EFORBIDDEN *Error saying which host was refused and under what key
// (setting, like "http.allow") it could be allowed.
func (a *AllowList) CheckURL(u *url.URL, setting string) error {
	if u == nil || u.Host == "" {
		return Errorf(EFORBIDDEN, "Switchboard calls only absolute http(s) URLs.")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return Errorf(EFORBIDDEN, "Switchboard calls only http and https URLs, not %s:.", scheme)
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	if a != nil {
		for _, e := range a.entries {
			if e.allows(scheme, host, port) {
				return nil
			}
		}
	}
	return Errorf(EFORBIDDEN, "Switchboard may not call %s://%s: it is not in %s.", scheme, u.Host, setting)
}

// checkAddress is what the dialer asks of every address it connects to.
func (a *AllowList) checkAddress(address string) error {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return Errorf(EFORBIDDEN, "Switchboard may not connect to %s.", address)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return Errorf(EFORBIDDEN, "Switchboard may not connect to %s.", address)
	}
	addr = addr.Unmap()
	if !Internal(addr) {
		return nil
	}
	if a == nil {
		a = &AllowList{}
	}
	for _, e := range a.entries {
		if e.names(addr, port) {
			return nil
		}
	}
	return Errorf(EFORBIDDEN, "Switchboard may not connect to %s: it is a loopback, private, link-local or metadata address; list it in http.allow to allow it.", addr)
}

// internalRanges are the addresses that are not on the public internet
// and that netip has no method for: CGNAT (where Alibaba's metadata lives,
// 100.100.100.200), "this network", IETF assignments (192.0.0.192 is
// Oracle's metadata), benchmarking, the reserved block, and NAT64 (whose
// embedded IPv4 address could be any of the above).
var internalRanges = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"),
}

// Internal reports whether addr is not a public unicast address: loopback,
// private (RFC 1918, fc00::/7, where AWS's IPv6 metadata fd00:ec2::254 is),
// link-local (169.254.169.254, the metadata service of most clouds),
// CGNAT, multicast, unspecified or reserved.
func Internal(addr netip.Addr) bool {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified() {
		return true
	}
	for _, p := range internalRanges {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// NoRedirects is an http.Client CheckRedirect that follows no redirect: the
// 3xx answer is returned as it is, so a peer cannot send Switchboard (with
// its headers) somewhere the allow list does not name.
func NoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// MaxResponseHeader bounds the headers Switchboard reads from a peer.
const MaxResponseHeader = 64 << 10

// Client returns an HTTP client that goes only where the list allows: every
// request's URL is checked, every connection's address is checked once
// resolved, redirects are not followed, and a request takes at most timeout
// (headers included; the body is the caller's to bound). setting names the
// config key in refusals.
func (a *AllowList) Client(timeout time.Duration, setting string) *http.Client {
	dialer := &net.Dialer{
		Timeout: min(timeout, 10*time.Second),
		Control: func(_, address string, _ syscall.RawConn) error {
			return a.checkAddress(address)
		},
	}
	transport := &http.Transport{
		// No proxy: a proxy would connect for Switchboard, unchecked.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    min(timeout, 10*time.Second),
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: MaxResponseHeader,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        30 * time.Second,
	}
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: NoRedirects,
		Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if err := a.CheckURL(req.URL, setting); err != nil {
				return nil, err
			}
			return transport.RoundTrip(req)
		}),
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// RedactURL writes u for a message or a log: without its password and with
// every query value replaced, since a query is where a URL carries a token.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	if _, has := c.User.Password(); has {
		c.User = url.UserPassword(c.User.Username(), "xxxxx")
	}
	c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = "", false, "", ""
	s := c.String()
	if u.RawQuery == "" {
		return s
	}
	var parts []string
	for _, kv := range strings.Split(u.RawQuery, "&") {
		k, _, _ := strings.Cut(kv, "=")
		if k != "" {
			parts = append(parts, k+"="+redactedMark)
		}
	}
	return s + "?" + strings.Join(parts, "&")
}

// redactedMark is what a secret reads as wherever Switchboard writes it.
const redactedMark = "[redacted]"
