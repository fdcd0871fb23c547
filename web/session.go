package web

import (
	"context"
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
// Each remembers whom it acts for in chat.
type sessions struct {
	ttl     time.Duration
	nowFunc func() time.Time

	mu   sync.Mutex
	live map[[32]byte]session // by sha256 of the id, so lookups leak nothing useful
}

// session is one login: until when it lasts and the chat user id it acts
// as ("" when its token names nobody).
type session struct {
	expires  time.Time
	operator string
}

func newSessions(ttl time.Duration, nowFunc func() time.Time) *sessions {
	return &sessions{ttl: ttl, nowFunc: nowFunc, live: make(map[[32]byte]session)}
}

// create starts a session acting as operator and returns its id.
func (s *sessions) create(operator string) string {
	id := randomID(32)
	now := s.nowFunc()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.live { // few sessions: pruning on login is enough
		if !now.Before(v.expires) {
			delete(s.live, k)
		}
	}
	s.live[sha256.Sum256([]byte(id))] = session{expires: now.Add(s.ttl), operator: operator}
	return id
}

// lookup returns the live session id names.
func (s *sessions) lookup(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.live[sha256.Sum256([]byte(id))]
	return v, ok && s.nowFunc().Before(v.expires)
}

// end forgets a session.
func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, sha256.Sum256([]byte(id)))
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

// loginToken is the token that logs in as Config.Operator: the admin
// token, or without one the generated token, which counts only while the
// server listens on loopback (on any other address it would travel to the
// server in the clear, and it was printed for someone at this machine).
func (s *Server) loginToken() string {
	if s.cfg.AdminToken != "" {
		return s.cfg.AdminToken
	}
	if s.loopback {
		return s.cfg.LocalToken
	}
	return ""
}

// consoleOff reports whether no token can log in at all.
func (s *Server) consoleOff() bool {
	return s.loginToken() == "" && len(s.cfg.Operators) == 0
}

// operatorFor returns the chat user id a token logs in as, and whether it
// logs in at all. Every token is compared, in constant time, whatever
// matched first.
func (s *Server) operatorFor(token string) (string, bool) {
	operator, ok := "", false
	if t := s.loginToken(); t != "" && equalSecret(token, t) {
		operator, ok = s.cfg.Operator, true
	}
	for user, t := range s.cfg.Operators {
		if t != "" && equalSecret(token, t) {
			operator, ok = user, true
		}
	}
	return operator, ok
}

// session returns r's live console session, if it has one.
func (s *Server) session(r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	return s.sessions.lookup(c.Value)
}

// consoleAccess says why r may not use the console, or nil when it may:
// every request needs a login, on loopback too, since any local user can
// reach a loopback port.
func (s *Server) consoleAccess(r *http.Request) error {
	if s.consoleOff() {
		return errConsoleDisabled
	}
	if _, ok := s.session(r); !ok {
		return switchboard.Errorf(switchboard.EUNAUTHORIZED, "Log in to the console at /console/login first.")
	}
	return nil
}

var errConsoleDisabled = switchboard.Errorf(switchboard.EFORBIDDEN,
	"The console is off because Switchboard listens on a public address without a password: set console.admin_token in the config (or listen on 127.0.0.1) to use it.")

// operatorKey carries the logged-in session's operator in a console API
// request's context.
type operatorKey struct{}

// actor returns whom a console action is taken for: with a chat platform
// configured, the logged-in person's chat identity, whatever the body
// names (an error when the login names nobody); in the built-in demo, the
// user picked in the playground.
func (s *Server) actor(r *http.Request, picked string) (string, error) {
	if !s.cfg.AsOperator {
		return picked, nil
	}
	if op, _ := r.Context().Value(operatorKey{}).(string); op != "" {
		return op, nil
	}
	return "", errNoOperator
}

var errNoOperator = switchboard.Errorf(switchboard.EFORBIDDEN,
	"This console login acts for nobody in chat, so it can look but not act: set console.operator to your chat user id, or log in with your own token from console.operators.")

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

// requireAPI guards the console JSON API: same origin, a login, and the
// page's CSRF token.
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
		sess, _ := s.session(r)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), operatorKey{}, sess.operator)))
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

// hostOnly strips the port from a host:port value.
func hostOnly(hostport string) string {
	if u, err := url.Parse("//" + hostport); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return hostport
}
