package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboardhq/switchboard"
)

// sessionCookie names the console's login cookie.
const sessionCookie = "switchboard_session"

// csrfHeader carries the page's CSRF token on every console API call.
const csrfHeader = "X-Switchboard-CSRF"

// sessions are console logins kept in memory: a restart logs everybody out,
// which is fine for an admin console and leaves nothing to steal on disk.
type sessions struct {
	ttl     time.Duration
	nowFunc func() time.Time

	mu      sync.Mutex
	expires map[[32]byte]time.Time // by sha256 of the id, so lookups leak nothing useful
}

func newSessions(ttl time.Duration, nowFunc func() time.Time) *sessions {
	return &sessions{ttl: ttl, nowFunc: nowFunc, expires: make(map[[32]byte]time.Time)}
}

// create starts a session and returns its id.
func (s *sessions) create() string {
	id := randomID(32)
	now := s.nowFunc()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, exp := range s.expires { // few sessions: pruning on login is enough
		if !now.Before(exp) {
			delete(s.expires, k)
		}
	}
	s.expires[sha256.Sum256([]byte(id))] = now.Add(s.ttl)
	return id
}

// valid reports whether id is a live session.
func (s *sessions) valid(id string) bool {
	if id == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.expires[sha256.Sum256([]byte(id))]
	return ok && s.nowFunc().Before(exp)
}

// end forgets a session.
func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.expires, sha256.Sum256([]byte(id)))
}

// loginLimiter slows down token guessing: a burst of attempts, then one
// every few seconds, per source address, so that one guesser cannot lock
// the admin out. The address is the connection's: X-Forwarded-For is not
// believed (anyone can send it); behind a proxy every login shares the
// proxy's address, and so its limit.
type loginLimiter struct {
	mu      sync.Mutex
	bySrc   map[string]*rate.Limiter
	nowFunc func() time.Time
}

// maxLoginSources is how many sources' limiters are kept before those
// back at their full burst are dropped.
const maxLoginSources = 10000

func newLoginLimiter(nowFunc func() time.Time) *loginLimiter {
	return &loginLimiter{bySrc: map[string]*rate.Limiter{}, nowFunc: nowFunc}
}

// allow takes one attempt from the source of remoteAddr (host:port).
func (l *loginLimiter) allow(remoteAddr string) bool {
	src, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		src = remoteAddr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.nowFunc()
	lim, ok := l.bySrc[src]
	if !ok {
		if len(l.bySrc) >= maxLoginSources {
			for k, v := range l.bySrc {
				if v.TokensAt(now) >= float64(v.Burst()) {
					delete(l.bySrc, k)
				}
			}
		}
		lim = rate.NewLimiter(rate.Every(3*time.Second), 10)
		l.bySrc[src] = lim
	}
	return lim.AllowN(now, 1)
}

// equalSecret compares two secrets in constant time, lengths included.
func equalSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// needsLogin reports whether r must carry a console session. The console is
// open without one only to a person on this machine: the server listens on
// loopback, the request names a loopback host (not a DNS-rebound name) and
// came through no proxy, and no admin token is set (a set token is always
// asked for, which also covers proxies that hide themselves).
func (s *Server) needsLogin(r *http.Request) bool {
	return s.cfg.AdminToken != "" || !s.loopback || !isLoopbackHost(hostOnly(r.Host)) || forwarded(r)
}

// forwarded reports whether a proxy says it relayed r.
func forwarded(r *http.Request) bool {
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-Ip"} {
		if r.Header.Get(h) != "" {
			return true
		}
	}
	return false
}

// loggedIn reports whether r carries a live console session.
func (s *Server) loggedIn(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	return err == nil && s.sessions.valid(c.Value)
}

// consoleAccess says why r may not use the console, or nil when it may.
func (s *Server) consoleAccess(r *http.Request) error {
	if !s.needsLogin(r) {
		return nil
	}
	if s.cfg.AdminToken == "" {
		return errConsoleDisabled
	}
	if !s.loggedIn(r) {
		return switchboard.Errorf(switchboard.EUNAUTHORIZED, "Log in to the console at /console/login first.")
	}
	return nil
}

var errConsoleDisabled = switchboard.Errorf(switchboard.EFORBIDDEN,
	"The console is off because Switchboard listens on a public address without a password: set console.admin_token in the config (or listen on 127.0.0.1) to use it.")

// sameOrigin reports whether r comes from a page of this server, by the
// browser's Sec-Fetch-Site and Origin headers. Requests without either
// (curl, tests) pass: they carry no ambient browser credentials to abuse
// beyond what the CSRF token and session already check.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false // includes Origin: null from sandboxed frames and file:// pages
	}
	return u.Host == r.Host
}

// requireAPI guards the console JSON API: same origin, a login when one is
// needed, and the page's CSRF token.
func (s *Server) requireAPI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w)
		if !sameOrigin(r) {
			writeError(w, r, s.cfg.Logger, switchboard.Errorf(switchboard.EFORBIDDEN, "This request came from another site and was refused."))
			return
		}
		if err := s.consoleAccess(r); err != nil {
			writeError(w, r, s.cfg.Logger, err)
			return
		}
		if !equalSecret(r.Header.Get(csrfHeader), s.csrf) {
			writeError(w, r, s.cfg.Logger, switchboard.Errorf(switchboard.EFORBIDDEN, "The console's security token is missing or out of date: reload the page."))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// setSecurityHeaders keeps console responses out of frames, away from other
// origins' scripts and styles, and out of caches.
func setSecurityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// hostOnly strips the port from a Host header value.
func hostOnly(hostport string) string {
	if u, err := url.Parse("//" + hostport); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return hostport
}
