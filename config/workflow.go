package config

import (
	"errors"
	"net"
	"net/url"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/switchboardhq/switchboard"
)

// This file decodes the sections that start work without a person typing a
// command: mailboxes, queues, hooks and the workflows they trigger. See
// docs/workflows.md for the contract.

// Mailbox TLS modes.
const (
	MailTLS      = "tls"      // TLS from the first byte (port 993)
	MailStartTLS = "starttls" // plain connection upgraded with STARTTLS (port 143)
	MailPlain    = "plain"    // no TLS: only for a local test server
)

// DefaultMailPoll is how often a mailbox is checked when the file does not
// say.
const DefaultMailPoll = 30 * time.Second

// Mailbox is an IMAP mailbox that mail triggers read.
type Mailbox struct {
	Name string `json:"name"`
	// Line is where the mailbox is defined in the file.
	Line int `json:"line"`
	// Addr is the IMAP server's host:port.
	Addr     string `json:"addr"`
	Username string `json:"username"`
	Password Secret `json:"password"`
	// TLS is MailTLS (the default), MailStartTLS or MailPlain.
	TLS string `json:"tls"`
	// Folder is the folder to watch (INBOX unless set).
	Folder string `json:"folder"`
	// Poll is how often the folder is checked for new mail.
	Poll time.Duration `json:"poll"`
}

// Queue is an SQS queue that EventBridge sends cloud events to, read by
// event triggers that name it.
type Queue struct {
	Name string `json:"name"`
	// Line is where the queue is defined in the file.
	Line int `json:"line"`
	// URL is the queue URL. It never holds credentials.
	URL string `json:"url"`
	// Region is the queue's region; when the file does not say, it is taken
	// from an AWS queue URL (https://sqs.REGION.amazonaws.com/...).
	Region string `json:"region,omitempty"`
	// Endpoint overrides the SQS API address (moto, LocalStack).
	Endpoint string `json:"endpoint,omitempty"`
	// Profile, AssumeRole and AccessKeyID with AccessKeySecret pick the
	// credentials as for an aws cloud; without them the SDK's default chain
	// applies.
	Profile         string     `json:"profile,omitempty"`
	AssumeRole      AssumeRole `json:"assume_role,omitzero"`
	AccessKeyID     string     `json:"access_key_id,omitempty"`
	AccessKeySecret Secret     `json:"access_key_secret,omitempty"`
}

// Hook is a webhook: POST /hooks/NAME with the body signed by Secret
// (HMAC-SHA256) starts the workflows whose trigger names it.
type Hook struct {
	Name string `json:"name"`
	// Line is where the hook is defined in the file.
	Line   int    `json:"line"`
	Secret Secret `json:"secret"`
}

// Workflow returns the workflow called name.
func (c *Config) Workflow(name string) (switchboard.WorkflowSpec, bool) {
	for _, w := range c.Workflows {
		if w.Name == name {
			return w, true
		}
	}
	return switchboard.WorkflowSpec{}, false
}

// Mailbox returns the mailbox called name.
func (c *Config) Mailbox(name string) (Mailbox, bool) {
	for _, m := range c.Mailboxes {
		if m.Name == name {
			return m, true
		}
	}
	return Mailbox{}, false
}

// Queue returns the queue called name.
func (c *Config) Queue(name string) (Queue, bool) {
	for _, q := range c.Queues {
		if q.Name == name {
			return q, true
		}
	}
	return Queue{}, false
}

// Hook returns the hook called name.
func (c *Config) Hook(name string) (Hook, bool) {
	for _, h := range c.Hooks {
		if h.Name == name {
			return h, true
		}
	}
	return Hook{}, false
}

// checkName reports a mailbox, queue, hook or workflow name that is not
// like a cloud name: these names appear in URLs (/hooks/NAME), logs and
// expressions (run.workflow).
func (d *decoder) checkName(p pair, what, example string) {
	if !cloudName.MatchString(p.name) {
		d.add(p.key.Line, p.path, "a %s name is letters, digits, - and _ (like %s)", what, example)
	}
}

// required reports key as missing from the mapping p, unless a problem was
// already reported for it (a wrong type, an unset variable).
func (d *decoder) required(p pair, f map[string]pair, key, format string, args ...any) {
	path := childPath(p.path, key)
	if !d.problems.none(path) {
		return
	}
	line := p.key.Line
	if q, ok := f[key]; ok {
		line = q.key.Line
	}
	d.add(line, path, "is required: "+format, args...)
}

// names lists the names of things defined in a section, for messages like
// "mailboxes defined: a, b".
func names[T any](items []T, name func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = name(it)
	}
	return out
}

var mailTLSModes = []string{MailTLS, MailStartTLS, MailPlain}

func (d *decoder) mailbox(p pair) Mailbox {
	m := Mailbox{Name: p.name, Line: p.key.Line, TLS: MailTLS, Folder: "INBOX", Poll: DefaultMailPoll}
	d.checkName(p, "mailbox", "aws-notices")
	f := d.fields(p.val, p.path, p.line(), "addr", "username", "password", "tls", "folder", "poll")
	if q, ok := f["addr"]; ok {
		if s, ok := d.str(q); ok {
			if msg := checkAddr(s); msg != "" {
				d.problemAt(q, "%s, got %s", msg, d.show(q, s))
			}
			m.Addr = s
		}
	}
	if m.Addr == "" {
		d.required(p, f, "addr", "the IMAP server's host:port, like imap.example.com:993")
	}
	if q, ok := f["username"]; ok {
		m.Username, _ = d.str(q)
	}
	if m.Username == "" {
		d.required(p, f, "username", "the IMAP login, like ops-notices@example.com")
	}
	if m.Password, _, _ = d.secret(f, "password"); m.Password == "" {
		d.required(p, f, "password", "the IMAP password, like password: ${file:/run/secrets/imap}")
	}
	if q, ok := f["tls"]; ok {
		if s, ok := d.str(q); ok {
			if !slices.Contains(mailTLSModes, s) {
				d.problemAt(q, "must be one of %s, got %s", strings.Join(mailTLSModes, ", "), d.show(q, s))
			}
			m.TLS = s
		}
	}
	if q, ok := f["folder"]; ok {
		if s, ok := d.str(q); ok {
			if s == "" {
				d.problemAt(q, "is empty; remove the key to watch INBOX")
			}
			m.Folder = s
		}
	}
	if q, ok := f["poll"]; ok {
		if v, ok := d.duration(q); ok {
			if v < time.Second {
				d.problemAt(q, "must be at least 1s, got %s", d.show(q, v.String()))
			}
			m.Poll = v
		}
	}
	return m
}

// checkAddr returns what is wrong with a server address, or "".
func checkAddr(s string) string {
	const want = "must be host:port, like imap.example.com:993"
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return want
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return want + " (the port is a number from 1 to 65535)"
	}
	return ""
}

// awsQueueHost matches the host of an AWS queue URL and captures its region.
var awsQueueHost = regexp.MustCompile(`^sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$`)

const exampleQueueURL = "https://sqs.us-east-1.amazonaws.com/123456789012/switchboard-events"

func (d *decoder) queue(p pair) Queue {
	qu := Queue{Name: p.name, Line: p.key.Line}
	d.checkName(p, "queue", "ec2-events")
	f := d.fields(p.val, p.path, p.line(), "url", "region", "endpoint", "profile", "assume_role", "access_key_id", "access_key_secret")
	urlOK := false
	if q, ok := f["url"]; ok {
		if s, ok := d.str(q); ok {
			if msg := checkHTTPURL(s, exampleQueueURL); msg != "" {
				d.problemAt(q, "%s", msg)
			} else if u, _ := url.Parse(s); strings.Trim(u.Path, "/") == "" {
				d.problemAt(q, "names no queue; a queue URL ends with the account and the queue name, like %s", exampleQueueURL)
			} else {
				urlOK = true
				if m := awsQueueHost.FindStringSubmatch(u.Hostname()); m != nil {
					qu.Region = m[1]
				}
			}
			qu.URL = s
		}
	}
	if qu.URL == "" {
		d.required(p, f, "url", "the queue URL, like %s", exampleQueueURL)
	}
	if q, ok := f["region"]; ok {
		if s, ok := d.str(q); ok && s != "" {
			qu.Region = s
		}
	}
	if qu.Region == "" && urlOK {
		d.required(p, f, "region", "the url is not an AWS queue URL, so say which region it is in (like us-east-1)")
	}
	if q, ok := f["endpoint"]; ok {
		if s, ok := d.str(q); ok {
			if msg := checkHTTPURL(s, "http://127.0.0.1:5000"); msg != "" {
				d.problemAt(q, "%s", msg)
			}
			qu.Endpoint = s
		}
	}
	if q, ok := f["profile"]; ok {
		qu.Profile, _ = d.str(q)
	}
	if q, ok := f["assume_role"]; ok {
		qu.AssumeRole = d.assumeRole(q)
		if r := qu.AssumeRole.RoleARN; r != "" && !strings.HasPrefix(r, "arn:") {
			d.problemAt(f["assume_role"], "role_arn must be an IAM role ARN (an SQS queue is on AWS), like arn:aws:iam::123456789012:role/switchboard")
		}
	}
	qu.AccessKeyID, qu.AccessKeySecret = d.accessKey(p, f)
	return qu
}

func (d *decoder) hooks(p pair) []Hook {
	if p.key == nil {
		return nil
	}
	var out []Hook
	for _, hp := range d.pairs(p.val, p.path, p.line()) {
		h := Hook{Name: hp.name, Line: hp.key.Line}
		d.checkName(hp, "hook", "deploy-done")
		f := d.fields(hp.val, hp.path, hp.line(), "secret")
		if h.Secret, _, _ = d.secret(f, "secret"); h.Secret == "" {
			d.required(hp, f, "secret", "the key the sender signs each body with (HMAC-SHA256), like secret: ${file:/run/secrets/hook}")
		}
		out = append(out, h)
	}
	return out
}

// awsEvents decodes aws_events: the shared secret of POST /events/aws.
func (d *decoder) awsEvents(p pair) AWSEvents {
	var e AWSEvents
	if p.key == nil {
		return e
	}
	f := d.fields(p.val, p.path, p.line(), "secret")
	if e.Secret, _, _ = d.secret(f, "secret"); e.Secret == "" {
		d.required(p, f, "secret", "the shared secret EventBridge sends in the X-Switchboard-Secret header, like secret: ${file:/run/secrets/events}")
	}
	return e
}

// Trigger kinds, in the order problems list them.
var triggerKinds = []string{"command", "schedule", "mail", "event", "webhook"}

var (
	missedPolicies = []string{"skip", "run_once"}
	// ec2States are the states of an EC2 state-change event.
	ec2States = []string{"pending", "running", "shutting-down", "terminated", "stopping", "stopped"}
)

// workflows decodes the workflows section. It runs after commands,
// mailboxes, queues and hooks, which workflows refer to.
func (d *decoder) workflows(p pair, c *Config) []switchboard.WorkflowSpec {
	if p.key == nil {
		return nil
	}
	var out []switchboard.WorkflowSpec
	commands := map[string]pair{} // slash command -> the trigger.command that took it
	for _, wp := range d.pairs(p.val, p.path, p.line()) {
		out = append(out, d.workflow(wp, c, commands))
	}
	return out
}

func (d *decoder) workflow(p pair, c *Config, commands map[string]pair) switchboard.WorkflowSpec {
	w := switchboard.WorkflowSpec{Name: p.name, Line: p.key.Line}
	d.checkName(p, "workflow", "maintenance")
	f := d.fields(p.val, p.path, p.line(), "trigger", "description", "usage", "cloud", "channel", "allow", "policy", "steps", "on_error")

	kind := ""
	if q, ok := f["trigger"]; ok {
		w.Trigger, kind = d.trigger(q, c, commands)
	} else {
		d.add(p.key.Line, childPath(p.path, "trigger"), "is required: what starts this workflow, one of %s", strings.Join(triggerKinds, ", "))
	}
	for key, to := range map[string]*string{"description": &w.Description, "usage": &w.Usage} {
		q, ok := f[key]
		if !ok {
			continue
		}
		if kind != "command" && kind != "" {
			d.problemAt(q, "applies only to a command trigger: Slack shows it beside the command")
		} else if v, ok := d.str(q); ok {
			if n := utf8.RuneCountInString(v); n > maxHelp[key] {
				d.problemAt(q, "is %d characters; keep it to %d, Slack shows it on one line beside the command", n, maxHelp[key])
			}
			*to = v
		}
	}

	// The workflow's cloud decides how literal instance ids in its steps
	// are checked.
	s := &stepScope{cfg: c, ids: map[string]int{}}
	if q, ok := f["cloud"]; ok {
		if name, ok := d.str(q); ok {
			w.Cloud = name
			if cl, ok := c.Cloud(name); ok {
				s.cloud = &cl
			} else {
				d.problemAt(q, "unknown cloud %s (%s)", d.show(q, name), defined("clouds", cloudNames(c.Clouds)))
			}
		}
	} else if len(c.Clouds) == 1 {
		s.cloud = &c.Clouds[0]
		w.Cloud = s.cloud.Name
	}

	if q, ok := f["channel"]; ok {
		if ch, ok := d.str(q); ok {
			if kind == "command" {
				d.problemAt(q, "applies only to workflows no command starts: a command's run talks in the channel it was typed in")
			} else {
				ch = d.channelTarget(q, ch, c)
			}
			w.Channel = ch
		}
	}
	if w.Channel == "" && kind != "" && kind != "command" {
		d.required(p, f, "channel", "the channel id where a run started by %s talks, like C0OPS", kind)
	}

	if q, ok := f["allow"]; ok && kind != "command" && kind != "" {
		d.add(q.key.Line, q.path, "applies only to a command trigger: it says who may start the workflow by command")
	} else if kind == "command" || ok {
		w.Access = d.access(f["allow"], p, c)
	}

	if q, ok := f["steps"]; ok {
		w.Steps = d.steps(q, s)
		if len(w.Steps) == 0 && d.problems.none(q.path) {
			d.problemAt(q, "is empty: a workflow has at least one step, like - notify: { text: hello }")
		}
	} else {
		d.add(p.key.Line, childPath(p.path, "steps"), "is required: the list of steps to run (docs/workflows.md lists the step types)")
	}
	if q, ok := f["on_error"]; ok {
		w.OnError = d.steps(q, s)
	}
	w.Policy = d.policy(f["policy"], c)
	if s.needsCloud && s.cloud == nil && d.problems.none(childPath(p.path, "cloud")) {
		d.add(p.key.Line, childPath(p.path, "cloud"), "is required: which cloud do its steps act on? (%s)", defined("clouds", cloudNames(c.Clouds)))
	}
	return w
}

// maxHelp is the longest description and usage hint of a command, as
// Slack's command menu shows them on one line.
var maxHelp = map[string]int{"description": 100, "usage": 100}

// trigger decodes a workflow's trigger and returns the kind it is, or ""
// when it has none.
func (d *decoder) trigger(p pair, c *Config, commands map[string]pair) (switchboard.TriggerSpec, string) {
	var t switchboard.TriggerSpec
	f := d.fields(p.val, p.path, p.line(), triggerKinds...)
	var kinds []string
	for _, k := range triggerKinds {
		if _, ok := f[k]; ok {
			kinds = append(kinds, k)
		}
	}
	switch {
	case len(kinds) == 0:
		d.add(p.line(), p.path, "needs one of %s", strings.Join(triggerKinds, ", "))
		return t, ""
	case len(kinds) > 1:
		d.add(f[kinds[1]].key.Line, p.path, "has both %s and %s; a workflow has one trigger (write another workflow for the other)", kinds[0], kinds[1])
	}

	if q, ok := f["command"]; ok {
		if s, ok := d.str(q); ok {
			t.Command = s
			_, isCommand := c.Command(s)
			other, taken := commands[s]
			switch {
			case !commandName.MatchString(s):
				d.problemAt(q, "a command starts with / and has no spaces, like /maint; got %s", d.show(q, s))
			case isCommand:
				d.problemAt(q, "%s is also under commands; a slash command starts one thing", d.show(q, s))
			case taken:
				d.problemAt(q, "%s already starts %s (line %d)", d.show(q, s), strings.TrimSuffix(other.path, ".trigger.command"), other.line())
			default:
				commands[s] = q
			}
		} else if d.problems.none(q.path) {
			d.problemAt(q, "needs the slash command that starts the workflow, like /maint")
		}
	}
	if q, ok := f["schedule"]; ok {
		t.Schedule = d.schedule(q)
	}
	if q, ok := f["mail"]; ok {
		t.Mail = d.mailTrigger(q, c)
	}
	if q, ok := f["event"]; ok {
		t.Event = d.eventTrigger(q, c)
	}
	if q, ok := f["webhook"]; ok {
		if s, ok := d.str(q); ok {
			t.Webhook = s
			if _, ok := c.Hook(s); !ok {
				d.problemAt(q, "unknown hook %s (%s)", d.show(q, s), defined("hooks", names(c.Hooks, func(h Hook) string { return h.Name })))
			}
		} else if d.problems.none(q.path) {
			d.problemAt(q, "needs the name of a hook under hooks, like deploy-done")
		}
	}
	return t, kinds[0]
}

func (d *decoder) schedule(p pair) *switchboard.ScheduleTrigger {
	s, _ := d.scheduleWith(p)
	return s
}

// scheduleWith decodes a schedule whose mapping may hold extra keys too,
// and returns those.
func (d *decoder) scheduleWith(p pair, extra ...string) (*switchboard.ScheduleTrigger, map[string]pair) {
	s := &switchboard.ScheduleTrigger{Timezone: "UTC", Missed: "skip"}
	f := d.fields(p.val, p.path, p.line(), append([]string{"cron", "timezone", "missed"}, extra...)...)
	if q, ok := f["cron"]; ok {
		if spec, ok := d.str(q); ok {
			s.Cron = spec
			const want = `(five fields: minute hour day-of-month month day-of-week, like "0 3 * * *")`
			_, err := cron.ParseStandard(spec)
			switch {
			case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
				d.problemAt(q, "give the time zone in timezone, not in the cron expression")
			case err != nil && d.hidden[q.path]:
				// The parser's reason quotes the expression, which may be secret.
				d.problemAt(q, "is not a valid cron expression %s", want)
			case err != nil:
				d.problemAt(q, "bad cron expression %s: %v %s", d.show(q, spec), err, want)
			}
		}
	}
	if s.Cron == "" {
		d.required(p, f, "cron", "when to run, in five fields (minute hour day-of-month month day-of-week), like \"0 3 * * *\"")
	}
	if q, ok := f["timezone"]; ok {
		if tz, ok := d.str(q); ok {
			if _, err := time.LoadLocation(tz); err != nil || tz == "" || tz == "Local" {
				d.problemAt(q, "unknown time zone %s; use an IANA name like Europe/Paris or UTC", d.show(q, tz))
			}
			s.Timezone = tz
		}
	}
	if q, ok := f["missed"]; ok {
		if m, ok := d.str(q); ok {
			if !slices.Contains(missedPolicies, m) {
				d.problemAt(q, "must be one of %s, got %s", strings.Join(missedPolicies, ", "), d.show(q, m))
			}
			s.Missed = m
		}
	}
	return s, f
}

func (d *decoder) mailTrigger(p pair, c *Config) *switchboard.MailTrigger {
	m := &switchboard.MailTrigger{}
	f := d.fields(p.val, p.path, p.line(), "mailbox", "subject", "from")
	if q, ok := f["mailbox"]; ok {
		if s, ok := d.str(q); ok {
			m.Mailbox = s
			if _, ok := c.Mailbox(s); !ok {
				d.problemAt(q, "unknown mailbox %s (%s)", d.show(q, s), defined("mailboxes", names(c.Mailboxes, func(m Mailbox) string { return m.Name })))
			}
		}
	}
	if m.Mailbox == "" {
		d.required(p, f, "mailbox", "the mailbox to read, one defined under mailboxes")
	}
	if q, ok := f["subject"]; ok {
		m.Subject = d.pattern(q)
	}
	if q, ok := f["from"]; ok {
		m.From = d.pattern(q)
	}
	return m
}

// pattern decodes a regular expression, reporting one that does not
// compile.
func (d *decoder) pattern(p pair) string {
	s, ok := d.str(p)
	if !ok {
		return ""
	}
	d.checkPattern(p, s)
	return s
}

func (d *decoder) checkPattern(p pair, s string) bool {
	_, err := regexp.Compile(s)
	if err == nil {
		return true
	}
	var se *syntax.Error
	switch {
	case d.hidden[p.path]:
		d.problemAt(p, "is not a valid regular expression")
	case errors.As(err, &se):
		d.problemAt(p, "is not a valid regular expression: %s in %q", se.Code, truncate(se.Expr, 40))
	default:
		d.problemAt(p, "is not a valid regular expression: %v", err)
	}
	return false
}

func (d *decoder) eventTrigger(p pair, c *Config) *switchboard.EventTrigger {
	e := &switchboard.EventTrigger{}
	f := d.fields(p.val, p.path, p.line(), "source", "detail_type", "state", "queue")
	if q, ok := f["source"]; ok {
		e.Source, _ = d.str(q)
	}
	if q, ok := f["detail_type"]; ok {
		e.DetailType, _ = d.stringOrList(q, "EC2 Instance State-change Notification")
	}
	if q, ok := f["state"]; ok {
		states, items := d.stringOrList(q, "terminated")
		for i, s := range states {
			if !slices.Contains(ec2States, s) {
				d.problemAt(items[i], "%s", unknownValue("state", s, d.show(items[i], s), ec2States))
			}
		}
		e.State = states
	}
	if q, ok := f["queue"]; ok {
		if s, ok := d.str(q); ok {
			e.Queue = s
			if _, ok := c.Queue(s); !ok {
				d.problemAt(q, "unknown queue %s (%s)", d.show(q, s), defined("queues", names(c.Queues, func(q Queue) string { return q.Name })))
			}
		}
	}
	if e.Source == "" && len(e.DetailType) == 0 && len(e.State) == 0 &&
		d.problems.none(childPath(p.path, "source")) && d.problems.none(childPath(p.path, "detail_type")) && d.problems.none(childPath(p.path, "state")) {
		d.problemAt(p, "would match every cloud event; name a source (aws.ec2, aws.health), a detail_type or a state")
	}
	return e
}

// unknownValue says that s is not one of values, with a suggestion when
// one is close.
func unknownValue(what, s, shown string, values []string) string {
	if sug := suggest(s, values); sug != "" {
		return "unknown " + what + " " + shown + "; did you mean " + strconv.Quote(sug) + "? (" + strings.Join(values, ", ") + ")"
	}
	return "unknown " + what + " " + shown + " (" + strings.Join(values, ", ") + ")"
}

// stringOrList decodes one string or a list of them.
func (d *decoder) stringOrList(p pair, example string) ([]string, []pair) {
	if v := resolve(p.val); v != nil && v.Kind == yaml.ScalarNode && !isNull(v) {
		s, ok := d.str(p)
		if !ok {
			return nil, nil
		}
		return []string{s}, []pair{p}
	}
	return d.list(p, example)
}
