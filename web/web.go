// Package web is Switchboard's HTTP server: health and readiness probes,
// /metrics, the Slack endpoints, and the web console — a chat playground
// where a newcomer types "/ec2 status" as a chosen user in a chosen channel
// and watches the ack and the channel's answers arrive, next to the list of
// runs and the audit log. The playground goes through the same
// switchboard.CommandHandler as Slack does, behind a login (on loopback
// too) and a CSRF token.
package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Store is what the server reads and writes: readiness, the runs and audit
// tables, and the console's channel transcripts.
type Store interface {
	Ping(ctx context.Context) error
	ListRuns(ctx context.Context, limit int) ([]switchboard.Run, error)
	ListAudit(ctx context.Context, q switchboard.AuditQuery) ([]switchboard.AuditEvent, error)
	Transcript(ctx context.Context, channel string, afterID int64, limit int) ([]switchboard.TranscriptLine, error)
	AppendTranscript(ctx context.Context, line switchboard.TranscriptLine) (int64, error)
}

// Approver takes decisions on approval requests.
type Approver interface {
	Decide(ctx context.Context, id, user string, approve bool, source string) (*switchboard.Approval, string, error)
}

// Auditor records audit events; the server uses it for failed console logins
// (console commands are audited by the CommandHandler).
type Auditor interface {
	Audit(ctx context.Context, e switchboard.AuditEvent) error
}

// SlackHandlers are the Slack endpoints, verified by signature in their own
// handlers. A nil handler means Slack is not configured.
type SlackHandlers struct {
	Commands     http.Handler
	Interactions http.Handler
	Events       http.Handler
}

// Config is what NewServer needs. Commands and Store are required.
type Config struct {
	// Addr is the listen address. On a loopback address (127.0.0.0/8,
	// ::1, localhost) LocalToken logs in to the console; anywhere else only
	// AdminToken and Operators do.
	Addr string
	// AdminToken is the console password (console.admin_token); it logs in
	// as Operator.
	AdminToken string
	// LocalToken is the token generated at first start and kept in the
	// data directory; without an AdminToken it logs in as Operator, on a
	// loopback listener only.
	LocalToken string
	// Operator is the chat user id the admin (or local) token acts as
	// (console.operator); Operators are per-person tokens by chat user id
	// (console.operators).
	Operator  string
	Operators map[string]string
	// AsOperator says a real chat platform is configured: console commands
	// and approval decisions are taken as the logged-in person's Operator
	// identity, never as a user the request names. Without it (the
	// built-in demo) the playground sends as whoever is picked.
	AsOperator bool
	Commands   switchboard.CommandHandler
	Store      Store
	// Auditor records failed logins; nil records nothing.
	Auditor Auditor
	// Rejections counts webhook calls and console logins refused before
	// they were verified (wrong signature or admin token, body over the
	// limit, too many attempts) and samples them into the audit log and
	// the log. Nil: a RejectSampler over Auditor and Logger.
	Rejections switchboard.Rejecter
	Slack      SlackHandlers
	// Metrics serves /metrics; nil answers 404.
	Metrics http.Handler
	// Users, Channels and CommandNames fill the playground's pickers and
	// help line: user ids from the config's groups, channel ids from allow
	// lists, command names such as "/ec2".
	Users        []string
	Channels     []string
	CommandNames []string
	// Approvals answers approval buttons from the console; nil answers 404.
	Approvals Approver
	// Details reads run details and the approvals inbox; nil answers 404
	// for a run and an empty inbox.
	Details Details
	// Fleet describes the clouds for the fleet view; nil shows none.
	Fleet Fleet
	// Names gives the names the console shows for user and channel ids;
	// nil shows the ids.
	Names Namer
	// AWSEvents serves POST /events/aws (EventBridge API destinations);
	// nil answers 404.
	AWSEvents http.Handler
	// Hooks are the webhook secrets by name (POST /hooks/NAME) and Events
	// what their calls start.
	Hooks  map[string]string
	Events switchboard.EventHandler
	// Sources is the health of the trigger sources (mailboxes, queues)
	// that /readyz and the console show; nil when there are none.
	Sources Sources
	Logger  *slog.Logger
	Meter   switchboard.Meter
	NowFunc func() time.Time
	// SessionTTL is how long a console login lasts; 12h when zero.
	SessionTTL time.Duration
}

// Server is the HTTP server's handler tree and the console's in-memory state
// (its CSRF token and login sessions).
type Server struct {
	cfg      Config
	loopback bool   // Addr is a loopback address
	csrf     string // per-process token the console page carries
	sessions *sessions
	logins   *loginLimiter
	handler  http.Handler
}

// NewServer builds the server. It panics when Commands or Store is nil, which
// is a wiring mistake, not a runtime condition.
func NewServer(cfg Config) *Server {
	if cfg.Commands == nil {
		panic("web: Config.Commands is required")
	}
	if cfg.Store == nil {
		panic("web: Config.Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Meter == nil {
		cfg.Meter = switchboard.NopMeter{}
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	if cfg.Rejections == nil {
		cfg.Rejections = &switchboard.RejectSampler{Auditor: cfg.Auditor, Logger: cfg.Logger}
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	s := &Server{
		cfg:      cfg,
		loopback: isLoopbackAddr(cfg.Addr),
		csrf:     randomID(32),
		sessions: newSessions(cfg.SessionTTL, cfg.NowFunc),
		logins:   newLoginLimiter(cfg.NowFunc),
	}
	s.handler = s.routes()
	return s
}

// LoginQuery is what the start banner appends to the console's address so
// that opening it logs the browser in ("?token=..."): the generated token
// where it is the console's login. It is empty when the admin token is:
// that one the operator already knows, and it is not printed.
func (s *Server) LoginQuery() string {
	return LoginQuery(s.cfg.Addr, s.cfg.AdminToken, s.cfg.LocalToken)
}

// LoginQuery is Server.LoginQuery for a server listening on addr with
// these tokens (Config.AdminToken, Config.LocalToken).
func LoginQuery(addr, adminToken, localToken string) string {
	if adminToken != "" || localToken == "" || !isLoopbackAddr(addr) {
		return ""
	}
	return "?token=" + url.QueryEscape(localToken)
}

// Handler returns the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// isLoopbackAddr reports whether a listen address only accepts connections
// from this machine. ":8080" listens everywhere, so it is not loopback.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr // an address without a port
	}
	return isLoopbackHost(host)
}

// isLoopbackHost reports whether host (a name or an IP, without port) names
// this machine.
func isLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// randomID returns n random bytes as hex. crypto/rand.Read never fails on
// the platforms Go supports (it panics instead).
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ConsoleMessenger delivers the messages of the console's own requests:
// they are shown in the console's channel transcript, which the store writes
// for every delivered message, so delivering them is recording them.
type ConsoleMessenger struct{}

// Deliver records nothing itself; the Via tells the store where it went.
func (ConsoleMessenger) Deliver(context.Context, switchboard.Message, []string) (switchboard.Delivery, error) {
	return switchboard.Delivery{Via: "console"}, nil
}

var _ switchboard.Messenger = ConsoleMessenger{}
