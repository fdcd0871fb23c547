package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/switchboardhq/switchboard"
)

// The console's pages are templates; its scripts and styles are served as
// they are under /static/. Both are compiled into the binary so the console
// needs nothing from the network.
var (
	//go:embed console/*.html
	pageFiles embed.FS
	//go:embed console/*.js console/*.css
	assetFiles embed.FS

	pages  = template.Must(template.ParseFS(pageFiles, "console/*.html"))
	assets = mustSub(assetFiles, "console")
)

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// maxBody caps a console API request body.
const maxBody = 64 << 10

// consoleCommandTimeout bounds a console command once it was received: the
// command goes through even if the browser tab closes meanwhile, so the
// transcript never shows a command without its ack.
const consoleCommandTimeout = 15 * time.Second

// consolePage is what index.html shows.
type consolePage struct {
	CSRF     string
	Users    []picker
	Channels []picker
	Commands []string
	// AsOperator: the user picker shows only the logged-in person's chat
	// identity, which commands and decisions are taken as.
	AsOperator bool
	Version    string
}

// picker is an option of the playground's user and channel pickers: the
// id it sends and the name it shows.
type picker struct {
	ID, Label string
}

// pickers labels ids with their names: "ana (U0OPS1)".
func pickers(ctx context.Context, names Namer, ids []string, sigil string) []picker {
	var known map[string]string
	if names != nil {
		known = names.Names(ctx, ids)
	}
	out := make([]picker, len(ids))
	for i, id := range ids {
		out[i] = picker{ID: id, Label: sigil + id}
		if n := known[id]; n != "" {
			out[i].Label = sigil + n + " (" + id + ")"
		}
	}
	return out
}

// loginPage is what login.html shows.
type loginPage struct {
	Message  string // why the last attempt failed
	Disabled string // set when the console cannot be used at all
}

func renderPage(w http.ResponseWriter, logger *slog.Logger, status int, name string, data any) {
	setSecurityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		logger.Error("render console page", "page", name, "err", err)
	}
}

// handleConsolePage serves the playground; requirePage has let the request
// in. With a chat platform configured the user picker holds only the
// logged-in person (nobody, when the login names no one).
func (s *Server) handleConsolePage(page consolePage) http.Handler {
	cfg := s.cfg
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := page
		users := cfg.Users
		if cfg.AsOperator {
			sess, _ := s.session(r)
			users = []string{sess.operator}
		}
		p.Users, p.Channels = pickers(r.Context(), cfg.Names, users, ""), pickers(r.Context(), cfg.Names, cfg.Channels, "#")
		if cfg.AsOperator && users[0] == "" {
			p.Users[0].Label = "nobody (this login can only look)"
		}
		renderPage(w, cfg.Logger, http.StatusOK, "index.html", p)
	})
}

// requirePage sends a browser without a login to the login page, and shows
// why when the console is off. An address with ?token= (the one the start
// banner prints) logs the browser in first.
func (s *Server) requirePage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("token") {
			s.loginFromLink(w, r)
			return
		}
		err := s.consoleAccess(r)
		switch switchboard.ErrorCode(err) {
		case "":
			next.ServeHTTP(w, r)
		case switchboard.EUNAUTHORIZED:
			http.Redirect(w, r, "/console/login", http.StatusSeeOther)
		default:
			renderPage(w, s.cfg.Logger, http.StatusForbidden, "login.html", loginPage{Disabled: switchboard.ErrorMessage(err)})
		}
	})
}

// loginFromLink logs a browser in with the token in its address and sends
// it to the same address without the token, so that the token does not
// stay in the address bar or the history.
func (s *Server) loginFromLink(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w) // not cached, no referrer: the address holds a token
	q := r.URL.Query()
	token := q.Get("token")
	q.Del("token")
	target := r.URL.Path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	if _, ok := s.session(r); ok {
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	s.login(w, r, token, target)
}

// handleLoginPage shows the login form, or sends the browser on when it
// already has a login.
func (s *Server) handleLoginPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, loggedIn := s.session(r)
		switch {
		case s.consoleOff():
			renderPage(w, s.cfg.Logger, http.StatusForbidden, "login.html", loginPage{Disabled: switchboard.ErrorMessage(errConsoleDisabled)})
		case loggedIn:
			http.Redirect(w, r, "/", http.StatusSeeOther)
		default:
			renderPage(w, s.cfg.Logger, http.StatusOK, "login.html", loginPage{})
		}
	})
}

// handleLogin checks the token of the login form and starts a session.
func (s *Server) handleLogin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(r) {
			renderPage(w, s.cfg.Logger, http.StatusForbidden, "login.html", loginPage{Message: "This login came from another site and was refused."})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if err := r.ParseForm(); err != nil && !s.consoleOff() {
			renderPage(w, s.cfg.Logger, http.StatusBadRequest, "login.html", loginPage{Message: "The login form could not be read; try again."})
			return
		}
		s.login(w, r, r.PostForm.Get("token"), "/")
	})
}

// login checks a token and, when it logs in, starts a session acting as
// its operator and sends the browser to target. Failed attempts are
// audited and, past a burst from one address, throttled.
func (s *Server) login(w http.ResponseWriter, r *http.Request, token, target string) {
	logger := s.cfg.Logger
	if s.consoleOff() {
		renderPage(w, logger, http.StatusForbidden, "login.html", loginPage{Disabled: switchboard.ErrorMessage(errConsoleDisabled)})
		return
	}
	if !s.logins.allow(r.RemoteAddr) {
		s.cfg.Rejections.Reject(r.Context(), switchboard.Rejection{Endpoint: "console", Outcome: "throttled", Remote: r.RemoteAddr,
			Audit: switchboard.AuditEvent{Time: s.cfg.NowFunc(), Actor: "console@" + hostOnly(r.RemoteAddr), Subject: "console login", Detail: "too many login attempts"},
			Log:   "console login throttled", LogAttrs: []any{"remote", r.RemoteAddr}})
		w.Header().Set("Retry-After", "10")
		renderPage(w, logger, http.StatusTooManyRequests, "login.html", loginPage{Message: "Too many login attempts: wait a minute and try again."})
		return
	}
	operator, ok := s.operatorFor(token)
	if !ok {
		s.auditFailedLogin(r)
		renderPage(w, logger, http.StatusUnauthorized, "login.html", loginPage{Message: "That admin token is not right."})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    s.sessions.create(operator),
		Path:     "/",
		MaxAge:   int(s.cfg.SessionTTL.Seconds()),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// auditFailedLogin counts a wrong admin token and samples it into the audit
// log and the log, as every request refused before it is verified.
func (s *Server) auditFailedLogin(r *http.Request) {
	remote, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		remote = r.RemoteAddr
	}
	s.cfg.Rejections.Reject(r.Context(), switchboard.Rejection{Endpoint: "console", Outcome: "refused", Remote: r.RemoteAddr,
		Audit: switchboard.AuditEvent{Time: s.cfg.NowFunc(), Actor: "console@" + remote, Subject: "console login", Detail: "wrong admin token"},
		Log:   "console login failed", LogAttrs: []any{"remote", remote}})
}

// handleLogout ends the session. The form carries the CSRF token so another
// site cannot log a person out.
func (s *Server) handleLogout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if !sameOrigin(r) || !equalSecret(r.FormValue("csrf"), s.csrf) {
			renderPage(w, s.cfg.Logger, http.StatusForbidden, "login.html", loginPage{Message: "The log-out request was refused: reload the console and try again."})
			return
		}
		if c, err := r.Cookie(sessionCookie); err == nil {
			s.sessions.end(c.Value)
		}
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
	})
}

// handleStatic serves the console's scripts and styles.
func handleStatic() http.Handler {
	files := http.StripPrefix("/static/", http.FileServerFS(assets))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No directory listings, and no redirect from a missing index.html.
		if strings.HasSuffix(r.URL.Path, "/") || strings.HasSuffix(r.URL.Path, "/index.html") {
			http.NotFound(w, r)
			return
		}
		setSecurityHeaders(w)
		files.ServeHTTP(w, r)
	})
}

// commandBody is what the playground posts: a line typed as a user in a channel.
type commandBody struct {
	User    string `json:"user"`
	Channel string `json:"channel"`
	Text    string `json:"text"`
}

// handleCommand runs a typed slash command through the same CommandHandler
// as Slack, and writes the command and its ack into the channel's
// transcript. actor says whom the command is typed as.
func handleCommand(commands switchboard.CommandHandler, store Store, logger *slog.Logger, meter switchboard.Meter, nowFunc func() time.Time,
	actor func(r *http.Request, picked string) (string, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var body commandBody
		err := decodeJSON(w, r, &body)
		if err == nil {
			body.User, err = actor(r, body.User)
		}
		if err != nil {
			meter.RequestServed("console", outcome(err), time.Since(start))
			writeError(w, r, logger, err)
			return
		}
		req, typed, err := consoleRequest(body, nowFunc())
		if err != nil {
			meter.RequestServed("console", outcome(err), time.Since(start))
			writeError(w, r, logger, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), consoleCommandTimeout)
		defer cancel()

		if _, err := store.AppendTranscript(ctx, switchboard.TranscriptLine{
			Time: req.ReceivedAt, ChannelID: req.ChannelID, UserID: req.UserID, Kind: "command", Text: typed,
		}); err != nil {
			meter.RequestServed("console", switchboard.EINTERNAL, time.Since(start))
			writeError(w, r, logger, fmt.Errorf("append command to transcript: %w", err))
			return
		}
		ack, err := commands.HandleCommand(ctx, req)
		if err != nil {
			// A refusal is an answer to the person who typed: it goes to
			// them like any ack. Only its sentence leaves the server.
			if switchboard.ErrorCode(err) == switchboard.EINTERNAL {
				logger.ErrorContext(ctx, "console command failed", "command", req.Command, "user", req.UserID, "channel", req.ChannelID, "err", err)
			}
			ack = switchboard.Ack{Text: switchboard.ErrorMessage(err)}
		}
		if _, err := store.AppendTranscript(ctx, switchboard.TranscriptLine{
			Time: nowFunc(), RunID: ack.RunID, ChannelID: req.ChannelID, UserID: req.UserID, Kind: "ack", Text: ack.Text,
		}); err != nil {
			// The command was handled; the person still gets the ack in
			// the response, only the transcript misses it.
			logger.ErrorContext(ctx, "append ack to transcript", "run_id", ack.RunID, "err", err)
		}
		meter.RequestServed("console", outcome(err), time.Since(start))
		writeJSON(w, http.StatusOK, map[string]switchboard.Ack{"ack": ack})
	})
}

// consoleRequest turns a typed line into a Request the way Slack would send
// it: the command word, then the rest as text.
func consoleRequest(body commandBody, now time.Time) (switchboard.Request, string, error) {
	user, channel, typed := strings.TrimSpace(body.User), strings.TrimSpace(body.Channel), strings.TrimSpace(body.Text)
	switch {
	case user == "":
		return switchboard.Request{}, "", switchboard.Errorf(switchboard.EINVALID, "Pick a user to send the command as.")
	case channel == "":
		return switchboard.Request{}, "", switchboard.Errorf(switchboard.EINVALID, "Pick a channel to send the command in.")
	case !isID(user) || !isID(channel):
		return switchboard.Request{}, "", switchboard.Errorf(switchboard.EINVALID, "User and channel ids are single words such as U0OPS1 and C0OPS.")
	case !strings.HasPrefix(typed, "/") || len(typed) < 2:
		return switchboard.Request{}, "", switchboard.Errorf(switchboard.EINVALID, "Type a slash command, such as /ec2 status.")
	}
	command, text := typed, ""
	if i := strings.IndexFunc(typed, unicode.IsSpace); i >= 0 {
		command, text = typed[:i], strings.TrimSpace(typed[i:])
	}
	return switchboard.Request{
		DeliveryID: "console-" + randomID(12),
		Source:     "console",
		Command:    strings.ToLower(command),
		Text:       text,
		UserID:     user,
		ChannelID:  channel,
		ReceivedAt: now,
	}, typed, nil
}

func isID(s string) bool {
	return len(s) <= 64 && strings.IndexFunc(s, unicode.IsSpace) < 0
}

// outcome names how a console request ended for the Meter.
func outcome(err error) string {
	switch code := switchboard.ErrorCode(err); code {
	case "":
		return "ok"
	case switchboard.EFORBIDDEN:
		return "refused"
	default:
		return code
	}
}

// decodeJSON reads a JSON body of at most maxBody bytes into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return switchboard.Errorf(switchboard.ETOOLARGE, "The request body is over %d KiB.", maxBody>>10)
	case err != nil:
		return switchboard.Errorf(switchboard.EINVALID, "The request body is not the JSON the console sends (%v).", err)
	}
	return nil
}

// handleTranscript answers a channel's transcript lines after an id, for
// the playground's polling; approval requests carry their approval.
func handleTranscript(store Store, details Details, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		channel := strings.TrimSpace(q.Get("channel"))
		if channel == "" {
			writeError(w, r, logger, switchboard.Errorf(switchboard.EINVALID, "Name the channel, e.g. ?channel=C0OPS."))
			return
		}
		var after int64
		if v := q.Get("after"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				writeError(w, r, logger, switchboard.Errorf(switchboard.EINVALID, "after must be a line id (a whole number), not %q.", v))
				return
			}
			after = n
		}
		limit, err := parseLimit(q.Get("limit"), 200, 500)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		lines, err := store.Transcript(r.Context(), channel, after, limit)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("read transcript of %s: %w", channel, err))
			return
		}
		out, err := withApprovals(r.Context(), details, lines)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("read the approvals of %s: %w", channel, err))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"lines": out})
	})
}

// handleRuns answers the newest runs.
func handleRuns(store Store, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, err := parseLimit(r.URL.Query().Get("limit"), 50, 500)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		runs, err := store.ListRuns(r.Context(), limit)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("list runs: %w", err))
			return
		}
		if runs == nil {
			runs = []switchboard.Run{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"runs": runs})
	})
}

// handleAudit answers the audit log, newest first, since a while ago
// (?since=1h) or since a time (?since=2024-05-01T10:00:00Z), narrowed by
// ?actor=, ?kind=, ?outcome= and ?run= (a run id or its beginning).
func handleAudit(store Store, logger *slog.Logger, nowFunc func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		since, err := parseSince(q.Get("since"), nowFunc())
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		limit, err := parseLimit(q.Get("limit"), 200, 1000)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		query := switchboard.AuditQuery{Since: since, Limit: limit, Actor: strings.TrimSpace(q.Get("actor")), Kind: strings.TrimSpace(q.Get("kind")),
			Outcome: strings.TrimSpace(q.Get("outcome")), RunID: strings.TrimSpace(q.Get("run"))}
		events, err := store.ListAudit(r.Context(), query)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("list audit events: %w", err))
			return
		}
		if events == nil {
			events = []switchboard.AuditEvent{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"events": events})
	})
}

// parseLimit reads a ?limit= value, defaulting to def and capping at max.
func parseLimit(v string, def, max int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, switchboard.Errorf(switchboard.EINVALID, "limit must be a whole number from 1 to %d, not %q.", max, v)
	}
	return min(n, max), nil
}

// parseSince reads ?since= as a duration back from now (1h, 30m; 1h when
// empty) or as an RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return now.Add(-time.Hour), nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, switchboard.Errorf(switchboard.EINVALID, "since must be a duration such as 1h or 30m, or a time such as 2024-05-01T10:00:00Z, not %q.", v)
}
