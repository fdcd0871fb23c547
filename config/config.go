// Package config reads Switchboard's one YAML file: where it listens, where it
// stores runs, how it talks to Slack, which clouds it acts on, which slash
// commands exist, who may use them and what they may touch, and which
// workflows run on their own (on a schedule, a mail, a cloud event, a
// webhook) or by command, with the mailboxes, queues and hooks they read.
//
// Decoding is strict and complete: an unknown key is an error (with a "did
// you mean" when a known key is close), and every problem in the file is
// reported at once, each with its file, line and key path, so that a person
// fixes the file in one pass. ${VAR}, ${VAR:-default} and ${file:PATH} in
// values bring in the environment and secret files; secrets never reach an
// error message, a log line or fmt output (see Secret and Config.Redacted).
package config

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Config is a whole configuration file, decoded, defaulted and validated.
type Config struct {
	// File is the path the configuration was read from.
	File string `json:"file"`
	// Listen is the host:port of the HTTP server.
	Listen string `json:"listen"`
	// Store is the database: sqlite://PATH or a postgres:// URL. It may hold
	// a password; print Redacted().Store, never Store.
	Store string `json:"store"`
	// DataDir holds the default SQLite database and other local state.
	DataDir string  `json:"data_dir"`
	Slack   Slack   `json:"slack"`
	Console Console `json:"console"`
	// Clouds in file order.
	Clouds []Cloud `json:"clouds"`
	// Groups maps a group name to the user ids in it, as written.
	Groups map[string][]string `json:"groups,omitempty"`
	// Names maps user and channel ids to the names the console shows for
	// them (U0OPS1: ana, C0OPS: ops).
	Names map[string]string `json:"names,omitempty"`
	// Commands in file order, with groups expanded into user ids.
	Commands []switchboard.CommandSpec `json:"commands"`
	// AWSEvents enables POST /events/aws (EventBridge API destinations).
	AWSEvents AWSEvents `json:"aws_events,omitzero"`
	// Mailboxes, Queues and Hooks are where triggers come from, in file
	// order.
	Mailboxes []Mailbox `json:"mailboxes,omitempty"`
	Queues    []Queue   `json:"queues,omitempty"`
	Hooks     []Hook    `json:"hooks,omitempty"`
	// Chef and Consul are the systems cleanup steps talk to; nil when the
	// file has no such section.
	Chef   *Chef   `json:"chef,omitempty"`
	Consul *Consul `json:"consul,omitempty"`
	DNS    *DNS    `json:"dns,omitempty"`
	// Deploys are the branch deploy commands, in file order.
	Deploys []Deploy `json:"deploys,omitempty"`
	// Workflows in file order, with groups expanded into user ids.
	Workflows []switchboard.WorkflowSpec `json:"workflows,omitempty"`
	Log       Log                        `json:"log"`
	// HTTP is where http workflow steps may call; nil when the file has
	// no http section, and then they may call nothing.
	HTTP *HTTP `json:"http,omitempty"`
	// RetryFor is how long a step whose cloud or system does not answer
	// (a workflow step or a built-in command's) is retried (the channel
	// told once) before it fails; 30m.
	RetryFor time.Duration `json:"retry_for"`
	// Retention is how long the store keeps what nobody needs any more.
	Retention Retention `json:"retention"`

	// registry holds the step types workflows may use.
	registry *switchboard.Registry
	// refs are the values of the ${...} references workflow steps keep
	// in their plans, by the text inside ${}.
	refs map[string]string
}

// Slack is how Switchboard talks to Slack. The section is optional: without
// it, commands come only from the console.
type Slack struct {
	// SigningSecret verifies that requests come from Slack.
	SigningSecret Secret `json:"signing_secret"`
	// BotToken (xoxb-) lets Switchboard post with chat.postMessage and
	// chat.update when a response_url is not enough.
	BotToken Secret `json:"bot_token"`
	// AppToken (xapp-) turns on Socket Mode: no public URL needed.
	AppToken Secret `json:"app_token"`
	// APIURL is the Slack Web API base, ending in "/"
	// (https://slack.com/api/ unless overridden, as tests do).
	APIURL string `json:"api_url"`
	// VerificationToken is Slack's deprecated shared token, accepted only
	// when AllowLegacyToken is true.
	VerificationToken Secret `json:"verification_token"`
	AllowLegacyToken  bool   `json:"allow_legacy_token"`
	// TeamID and AppID, when set, are the only workspace (T…) and app
	// (A…) whose requests Switchboard takes.
	TeamID string `json:"team_id,omitempty"`
	AppID  string `json:"app_id,omitempty"`
	// Webhooks are Slack incoming webhooks by name: a channel target
	// webhook:NAME posts there, with no bot token. A channel target given
	// as a URL is kept here too, under a name of its own.
	Webhooks map[string]Secret `json:"webhooks,omitempty"`
	// ResponseURLHosts are where a request's response_url may point
	// (switchboard.AllowList entries): Slack's hooks.slack.com unless the
	// file says otherwise (Enterprise Grid, GovSlack, or a test's fake
	// Slack at http://127.0.0.1:PORT). A request naming another is refused.
	ResponseURLHosts []string `json:"response_url_hosts"`
}

// DefaultResponseURLHosts is where Slack's response_urls point.
var DefaultResponseURLHosts = []string{"hooks.slack.com"}

// HTTP is the http section: the hosts (and internal addresses) http
// workflow steps may call, as switchboard.AllowList entries.
type HTTP struct {
	Allow []string `json:"allow"`
	Line  int      `json:"line"`
}

// Enabled reports whether the file has a slack section (which requires a
// signing secret).
func (s Slack) Enabled() bool { return s.SigningSecret != "" }

// SocketMode reports whether Switchboard should connect to Slack over Socket
// Mode.
func (s Slack) SocketMode() bool { return s.AppToken != "" }

// AWSEvents is the shared secret EventBridge sends to POST /events/aws.
type AWSEvents struct {
	Secret Secret `json:"secret,omitempty"`
}

// Retention is how long the store keeps audit lines, finished runs and
// delivery keys before the leader prunes them; zero keeps them forever.
type Retention struct {
	Audit      time.Duration `json:"audit"`      // default 90 days
	Runs       time.Duration `json:"runs"`       // default 30 days
	Deliveries time.Duration `json:"deliveries"` // default 7 days
}

// Defaults of Retention.
const (
	DefaultAuditRetention    = 90 * 24 * time.Hour
	DefaultRunRetention      = 30 * 24 * time.Hour
	DefaultDeliveryRetention = 7 * 24 * time.Hour
)

// Console configures the web console. It always asks for a login: the
// admin token, or without one the token Switchboard makes at first start
// (in the data directory). When a chat platform is configured, what the
// console does is done as the logged-in person's chat identity.
type Console struct {
	// AdminToken, when set, is the console's password; without it the
	// generated token is.
	AdminToken Secret `json:"admin_token"`
	// Operator is the chat user id the admin (or generated) token acts
	// as when a chat platform is configured; empty: it only looks.
	Operator string `json:"operator,omitempty"`
	// Operators are per-person logins: a chat user id and the token
	// that logs in as that person.
	Operators map[string]Secret `json:"operators,omitempty"`
}

// Log configures the process log.
type Log struct {
	Level  string `json:"level"`  // debug | info | warn | error
	Format string `json:"format"` // text | json
}

// SlogLevel returns Level as a slog.Level.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Cloud is one cloud account in one region: a provider and that provider's
// own options, declared by the provider's switchboard.CloudType and checked
// against it.
type Cloud struct {
	Name     string `json:"name"`
	Provider string `json:"provider"` // a registered cloud type: sim, aws, alibaba
	// Line is where the cloud is defined in the file.
	Line int `json:"line"`
	// Options are the provider's options as decoded: strings, booleans,
	// numbers, lists and mappings of them; durations as written; secrets
	// as Secret.
	Options map[string]any `json:"options,omitempty"`
}

// Option returns a text option of the cloud, "" when it is not set.
func (c Cloud) Option(name string) string {
	s, _ := c.Options[name].(string)
	return s
}

// OptionsJSON returns the options as the provider decodes them, secrets in
// the clear: hand it to the provider and nothing else.
func (c Cloud) OptionsJSON() (json.RawMessage, error) {
	return json.Marshal(revealSecrets(c.Options))
}

// revealSecrets copies v with every Secret turned into its value.
func revealSecrets(v any) any {
	switch v := v.(type) {
	case Secret:
		return v.Value()
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = revealSecrets(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = revealSecrets(e)
		}
		return out
	}
	return v
}

// redactSecrets copies v with every Secret redacted.
func redactSecrets(v any) any {
	switch v := v.(type) {
	case Secret:
		return redactSecret(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = redactSecrets(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = redactSecrets(e)
		}
		return out
	}
	return v
}

// AssumeRole is an IAM (or RAM) role to assume with STS.
type AssumeRole struct {
	RoleARN    string `json:"role_arn,omitempty"`
	ExternalID string `json:"external_id,omitempty"`
}

// DefaultListen is where Switchboard listens when the file does not say.
const DefaultListen = "127.0.0.1:8080"

// DefaultDataDir is the data directory when the file does not say.
const DefaultDataDir = "./data"

// DefaultSlackAPIURL is Slack's Web API base.
const DefaultSlackAPIURL = "https://slack.com/api/"

// DefaultYAML is the configuration `switchboard serve` uses without
// --config: a simulated cloud with a small fleet and one /ec2 command, so a
// newcomer can try everything from the console.
//
//go:embed default.yaml
var DefaultYAML []byte

// Load reads and decodes the configuration file at path. getenv resolves
// ${VAR} references (pass os.Getenv; nil means an empty environment); reg
// holds the step types workflows may use. When the file has problems, the
// error is a Problems listing all of them.
func Load(path string, getenv func(string) string, reg *switchboard.Registry) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, getenv, reg)
}

// Parse decodes a configuration held in memory; name is used in problems as
// the file name. When the data has problems, the error is a Problems listing
// all of them.
func Parse(name string, data []byte, getenv func(string) string, reg *switchboard.Registry) (*Config, error) {
	return parse(name, data, getenv, options{registry: reg})
}

// LoadWithoutSecrets reads the file for what it declares (its commands,
// workflows and deploys) where its secrets may not exist yet, as for a
// Slack app manifest printed before the app is created: a ${VAR} that is
// not set or a ${file:PATH} that cannot be read stands for an empty value,
// and a value that comes from one (a secret, a URL) is not checked. The
// result is for reading declarations only, never for serving.
func LoadWithoutSecrets(path string, getenv func(string) string, reg *switchboard.Registry) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return parse(path, data, getenv, options{registry: reg, withoutSecrets: true})
}

// Default returns the built-in configuration (DefaultYAML) with its data in
// dataDir ("" means DefaultDataDir).
func Default(dataDir string, reg *switchboard.Registry) *Config {
	c, err := parse(defaultName, DefaultYAML, nil, options{dataDir: dataDir, registry: reg})
	if err != nil {
		// The embedded file is tested; this is a build that broke it.
		panic("config: the built-in default.yaml is invalid:\n" + err.Error())
	}
	return c
}

const defaultName = "(built-in default)"

// options are the knobs Parse does not expose: tests and Default use them.
type options struct {
	registry *switchboard.Registry
	dataDir  string
	readFile func(string) ([]byte, error)
	// withoutSecrets: see LoadWithoutSecrets.
	withoutSecrets bool
}

// Registry returns the step types the configuration was checked against.
func (c *Config) Registry() *switchboard.Registry { return c.registry }

// Cloud returns the cloud called name.
func (c *Config) Cloud(name string) (Cloud, bool) {
	for _, cl := range c.Clouds {
		if cl.Name == name {
			return cl, true
		}
	}
	return Cloud{}, false
}

// Command returns the command called name ("/ec2").
func (c *Config) Command(name string) (switchboard.CommandSpec, bool) {
	for _, cmd := range c.Commands {
		if cmd.Name == name {
			return cmd, true
		}
	}
	return switchboard.CommandSpec{}, false
}

// StoreDSN splits Store into the kind of database ("sqlite" or "postgres")
// and what its driver opens: the file path (with any ?query kept) or the
// URL as written.
func (c *Config) StoreDSN() (driver, dsn string) {
	if path, ok := strings.CutPrefix(c.Store, "sqlite://"); ok {
		return "sqlite", path
	}
	return "postgres", c.Store
}

// Redacted returns a copy safe to print or show: every secret reads
// "[redacted]", the store URL's password is replaced, and so are the
// header values of http steps (where a step carries a token). (Endpoints and
// api_url cannot hold credentials: validation refuses them.)
func (c *Config) Redacted() *Config {
	r := *c
	r.refs = nil // the values of secret references
	r.Store = redactURL(c.Store)
	r.Slack.SigningSecret = redactSecret(c.Slack.SigningSecret)
	r.Slack.BotToken = redactSecret(c.Slack.BotToken)
	r.Slack.AppToken = redactSecret(c.Slack.AppToken)
	r.Slack.VerificationToken = redactSecret(c.Slack.VerificationToken)
	if c.Slack.Webhooks != nil {
		r.Slack.Webhooks = map[string]Secret{}
		for name, u := range c.Slack.Webhooks {
			r.Slack.Webhooks[name] = redactSecret(u)
		}
	}
	r.Console.AdminToken = redactSecret(c.Console.AdminToken)
	if c.Console.Operators != nil {
		r.Console.Operators = map[string]Secret{}
		for user, token := range c.Console.Operators {
			r.Console.Operators[user] = redactSecret(token)
		}
	}
	r.Clouds = make([]Cloud, len(c.Clouds))
	for i, cl := range c.Clouds {
		if cl.Options != nil {
			cl.Options = redactSecrets(cl.Options).(map[string]any)
		}
		r.Clouds[i] = cl
	}
	// Clone keeps nil as nil, so that a copy prints like the original.
	r.Mailboxes = slices.Clone(c.Mailboxes)
	for i := range r.Mailboxes {
		r.Mailboxes[i].Password = redactSecret(r.Mailboxes[i].Password)
	}
	r.Queues = slices.Clone(c.Queues)
	for i := range r.Queues {
		r.Queues[i].AccessKeySecret = redactSecret(r.Queues[i].AccessKeySecret)
	}
	r.Hooks = slices.Clone(c.Hooks)
	for i := range r.Hooks {
		r.Hooks[i].Secret = redactSecret(r.Hooks[i].Secret)
	}
	r.AWSEvents.Secret = redactSecret(r.AWSEvents.Secret)
	if c.Chef != nil {
		chef := *c.Chef
		chef.Key = redactSecret(chef.Key)
		r.Chef = &chef
	}
	if c.DNS != nil {
		dns := *c.DNS
		dns.AccessKeySecret = redactSecret(dns.AccessKeySecret)
		r.DNS = &dns
	}
	if c.Consul != nil {
		consul := *c.Consul
		consul.Token = redactSecret(consul.Token)
		r.Consul = &consul
	}
	r.Workflows = slices.Clone(c.Workflows)
	for i := range r.Workflows {
		r.Workflows[i].Steps = redactSteps(r.Workflows[i].Steps)
		r.Workflows[i].OnError = redactSteps(r.Workflows[i].OnError)
	}
	return &r
}

func redactSecret(s Secret) Secret {
	if s == "" {
		return ""
	}
	return redacted
}

// redactURL hides the password of a URL, in its userinfo or in a
// ?password= parameter (which pgx reads too).
func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return redacted
	}
	const mark = "REDACTEDPASSWORD"
	masked := false
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), mark)
		masked = true
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", mark)
		u.RawQuery = q.Encode()
		masked = true
	}
	if !masked {
		return s
	}
	return strings.ReplaceAll(u.String(), mark, redacted)
}

// plain is Config without its methods, so Format and MarshalJSON can print
// the fields without calling themselves.
type plain Config

// String prints the configuration with its secrets redacted.
func (c Config) String() string { return fmt.Sprintf("%+v", plain(*c.Redacted())) }

// Format makes every fmt verb print the redacted configuration.
func (c Config) Format(f fmt.State, verb rune) {
	r := plain(*c.Redacted())
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprintf(f, "%#v", r)
	case verb == 'v' && !f.Flag('+'):
		fmt.Fprintf(f, "%v", r)
	default:
		fmt.Fprintf(f, "%+v", r)
	}
}

// MarshalJSON writes the redacted configuration.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(plain(*c.Redacted())) }

// LogValue summarizes the configuration for slog, without secrets.
func (c Config) LogValue() slog.Value {
	clouds := make([]string, len(c.Clouds))
	for i, cl := range c.Clouds {
		clouds[i] = cl.Name + "(" + cl.Provider + ")"
	}
	commands := make([]string, len(c.Commands))
	for i, cmd := range c.Commands {
		commands[i] = cmd.Name
	}
	workflows := make([]string, len(c.Workflows))
	for i, w := range c.Workflows {
		workflows[i] = w.Name
	}
	return slog.GroupValue(
		slog.String("file", c.File),
		slog.String("listen", c.Listen),
		slog.String("store", redactURL(c.Store)),
		slog.String("data_dir", c.DataDir),
		slog.Bool("slack", c.Slack.Enabled()),
		slog.Bool("socket_mode", c.Slack.SocketMode()),
		slog.Any("clouds", clouds),
		slog.Any("commands", commands),
		slog.Any("workflows", workflows),
	)
}

var (
	_ fmt.Formatter  = Config{}
	_ slog.LogValuer = Config{}
	_ json.Marshaler = Config{}
)
