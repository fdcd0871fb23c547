package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/switchboardhq/switchboard"
)

func parse(name string, data []byte, getenv func(string) string, o options) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	d := &decoder{file: name, getenv: getenv, readFile: o.readFile, hidden: map[string]bool{}, registry: o.registry,
		refs: map[string]string{}, withoutSecrets: o.withoutSecrets}
	if d.readFile == nil {
		d.readFile = readSecretFile
	}
	root := d.document(data)
	if len(d.problems) > 0 {
		return nil, d.problems.sorted()
	}
	c := &Config{File: name, registry: o.registry, refs: d.refs}
	d.config(c, root, o)
	if d.withoutSecrets {
		// What comes from the environment or a file is not there to check.
		d.problems = slices.DeleteFunc(d.problems, func(p Problem) bool { return d.hidden[p.Key] })
	}
	if len(d.problems) > 0 {
		return nil, d.problems.sorted()
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document parses data into its root node (nil for an empty file),
// reporting YAML syntax errors and extra documents.
func (d *decoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := decodeNode(dec, &doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	if err := decodeNode(dec, &extra); err == nil {
		d.add(extra.Line, "", "a second YAML document (after ---) is not allowed; keep the whole configuration in one")
	} else if !errors.Is(err, io.EOF) {
		d.yamlError(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

// decodeNode turns a panic inside the YAML library into an error: a hostile
// file must not crash the process that loads it.
func decodeNode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: cannot parse this file (%v)", r)
		}
	}()
	return dec.Decode(n)
}

func (d *decoder) yamlError(err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		d.add(line, "", "invalid YAML: %s", m[2])
		return
	}
	d.add(0, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

var topKeys = []string{"listen", "store", "data_dir", "log", "slack", "console", "clouds", "groups", "names", "commands", "mailboxes", "queues", "hooks", "aws_events", "chef", "consul", "dns", "deploys", "workflows", "retry_for", "http", "retention"}

func (d *decoder) config(c *Config, root *yaml.Node, o options) {
	// Top-level keys starting with "x-" are ignored, as in Compose files:
	// a place to define anchors that the rest of the file aliases.
	var pairs []pair
	for _, p := range d.pairs(root, "", 1) {
		if !strings.HasPrefix(p.name, "x-") {
			pairs = append(pairs, p)
		}
	}
	f := d.known(pairs, topKeys...)

	c.Listen = DefaultListen
	if p, ok := f["listen"]; ok {
		if s, ok := d.str(p); ok {
			if msg := checkListen(s); msg != "" {
				d.problemAt(p, "%s, got %s", msg, d.show(p, s))
			}
			c.Listen = s
		}
	}

	c.DataDir = DefaultDataDir
	if o.dataDir != "" {
		c.DataDir = o.dataDir
	}
	if p, ok := f["data_dir"]; ok {
		if s, ok := d.str(p); ok {
			if s == "" {
				d.problemAt(p, "is empty; remove the key to use %s", DefaultDataDir)
			}
			c.DataDir = s
		}
	}

	c.Store = "sqlite://" + strings.TrimSuffix(c.DataDir, "/") + "/switchboard.db"
	if p, ok := f["store"]; ok {
		d.hidden[p.path] = true // a postgres URL may hold a password
		if s, ok := d.str(p); ok {
			if msg := checkStore(s); msg != "" {
				d.problemAt(p, "%s", msg)
			}
			c.Store = s
		}
	}

	c.Log = d.log(f["log"])
	c.RetryFor = 30 * time.Minute
	if p, ok := f["retry_for"]; ok {
		c.RetryFor, _ = d.positiveDuration(p)
	}
	c.Retention = d.retention(f["retention"])
	c.Slack = Slack{APIURL: DefaultSlackAPIURL, ResponseURLHosts: DefaultResponseURLHosts}
	if p, ok := f["slack"]; ok {
		c.Slack = d.slack(p)
	}
	c.HTTP = d.http(f["http"])
	c.Console = d.console(f["console"])
	c.Clouds = named(d, f["clouds"], d.cloud)
	c.Groups = d.groups(f["groups"])
	c.Names = d.names(f["names"])
	c.Commands = d.commands(f["commands"], c)
	c.Mailboxes = named(d, f["mailboxes"], d.mailbox)
	c.Queues = named(d, f["queues"], d.queue)
	c.Hooks = d.hooks(f["hooks"])
	c.AWSEvents = d.awsEvents(f["aws_events"])
	c.Chef = d.chef(f["chef"])
	c.Consul = d.consul(f["consul"])
	c.DNS = d.dns(f["dns"])
	c.Deploys = d.deploys(f["deploys"], c)
	// Workflows come last: they refer to all of the above.
	c.Workflows = append(d.workflows(f["workflows"], c), deployWorkflows(c.Deploys)...)
}

// checkListen returns what is wrong with a listen address, or "".
func checkListen(s string) string {
	const want = "must be host:port, like 127.0.0.1:8080 or :8080"
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return want
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return want + " (the port is a number from 0 to 65535)"
	}
	return ""
}

// checkStore returns what is wrong with a store URL, or "". It never echoes
// the value, which may hold a password.
func checkStore(s string) string {
	const want = "must be sqlite://PATH or a postgres:// URL, like sqlite://./data/switchboard.db or postgres://user:pass@host:5432/db"
	if path, ok := strings.CutPrefix(s, "sqlite://"); ok {
		if path, _, _ = strings.Cut(path, "?"); path == "" {
			return "sqlite:// needs a file path, like sqlite://./data/switchboard.db"
		}
		return ""
	}
	if !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
		return want
	}
	if _, err := url.Parse(s); err != nil {
		// url's own message may quote part of the password.
		return "is not a valid URL; percent-encode special characters in the user name and password (@ is %40, / is %2F, : is %3A)"
	}
	return ""
}

// checkHTTPURL returns what is wrong with an http(s) base URL, or "".
// Credentials are refused so that the URL is never a secret to hide.
func checkHTTPURL(s, example string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "must be an http:// or https:// URL, like " + example
	}
	if u.User != nil {
		return "must not hold a user name or password"
	}
	return ""
}

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

func (d *decoder) log(p pair) Log {
	l := Log{Level: "info", Format: "text"}
	if p.key == nil {
		return l
	}
	f := d.fields(p.val, p.path, p.line(), "level", "format")
	if q, ok := f["level"]; ok {
		if s, ok := d.str(q); ok {
			if !slices.Contains(logLevels, s) {
				d.problemAt(q, "must be one of %s, got %s", strings.Join(logLevels, ", "), d.show(q, s))
			}
			l.Level = s
		}
	}
	if q, ok := f["format"]; ok {
		if s, ok := d.str(q); ok {
			if !slices.Contains(logFormats, s) {
				d.problemAt(q, "must be one of %s, got %s", strings.Join(logFormats, ", "), d.show(q, s))
			}
			l.Format = s
		}
	}
	return l
}

// secret decodes a secret key; its value never appears in a problem.
func (d *decoder) secret(f map[string]pair, key string) (Secret, pair, bool) {
	p, ok := f[key]
	if !ok {
		return "", p, false
	}
	d.hidden[p.path] = true
	s, ok := d.str(p)
	return Secret(s), p, ok && s != ""
}

func (d *decoder) slack(p pair) Slack {
	s := Slack{APIURL: DefaultSlackAPIURL, ResponseURLHosts: DefaultResponseURLHosts}
	f := d.fields(p.val, p.path, p.line(),
		"signing_secret", "bot_token", "app_token", "api_url", "verification_token", "allow_legacy_token", "webhooks", "team_id", "app_id",
		"response_url_hosts")
	if q, ok := f["response_url_hosts"]; ok {
		s.ResponseURLHosts = d.allowList(q, "hooks.slack.com")
	}

	if q, ok := f["webhooks"]; ok {
		s.Webhooks = map[string]Secret{}
		for _, wp := range d.pairs(q.val, q.path, q.line()) {
			d.checkName(wp, "webhook", "deploys")
			d.hidden[wp.path] = true
			s.Webhooks[wp.name] = "" // known by name even when its value has a problem
			if u, ok := d.str(wp); ok {
				if msg := checkWebhookURL(u); msg != "" {
					d.problemAt(wp, "%s", msg)
				}
				s.Webhooks[wp.name] = Secret(u)
			}
		}
	}
	for key, to := range map[string]*string{"team_id": &s.TeamID, "app_id": &s.AppID} {
		if q, ok := f[key]; ok {
			if v, ok := d.str(q); ok {
				if want := map[string]string{"team_id": "T", "app_id": "A"}[key]; !strings.HasPrefix(v, want) || strings.ContainsFunc(v, unicode.IsSpace) {
					d.problemAt(q, "%s is not a Slack %s id (it starts with %s, like %s0123ABCD)", d.show(q, v), strings.TrimSuffix(key, "_id"), want, want)
				}
				*to = v
			}
		}
	}
	sp, present := f["signing_secret"]
	s.SigningSecret, _, _ = d.secret(f, "signing_secret")
	if !present && len(f) == 1 && s.Webhooks != nil {
		// Incoming webhooks alone need no Slack app to verify requests.
	} else if !present {
		d.add(p.key.Line, childPath(p.path, "signing_secret"),
			"is required in the slack section: copy the Signing Secret from your Slack app's Basic Information page (signing_secret: ${SLACK_SIGNING_SECRET})")
	} else if s.SigningSecret == "" && d.problems.none(sp.path) {
		d.problemAt(sp, "is empty; the Signing Secret is on your Slack app's Basic Information page")
	}

	var q pair
	var ok bool
	if s.BotToken, q, ok = d.secret(f, "bot_token"); ok && !strings.HasPrefix(string(s.BotToken), "xoxb-") {
		d.problemAt(q, "must be a bot token starting with xoxb-%s", tokenHint(string(s.BotToken)))
	}
	if s.AppToken, q, ok = d.secret(f, "app_token"); ok && !strings.HasPrefix(string(s.AppToken), "xapp-") {
		d.problemAt(q, "must be an app-level token starting with xapp-%s", tokenHint(string(s.AppToken)))
	}
	s.VerificationToken, _, _ = d.secret(f, "verification_token")

	if q, ok := f["api_url"]; ok {
		if u, ok := d.str(q); ok {
			if msg := checkHTTPURL(u, "https://slack.com/api/"); msg != "" {
				d.problemAt(q, "%s", msg)
			} else if !strings.HasSuffix(u, "/") {
				u += "/" // the Slack client appends method names directly
			}
			s.APIURL = u
		}
	}
	if q, ok := f["allow_legacy_token"]; ok {
		s.AllowLegacyToken, _ = d.boolean(q)
		if s.AllowLegacyToken && s.VerificationToken == "" {
			d.problemAt(q, "needs verification_token (the legacy token from your Slack app's Basic Information page)")
		}
	}
	return s
}

// allowList decodes a list of hosts Switchboard may send requests to
// (switchboard.AllowList entries), each checked where it is written.
func (d *decoder) allowList(p pair, example string) []string {
	list, items := d.list(p, example)
	for i, e := range list {
		if msg := switchboard.CheckAllowEntry(e); msg != "" {
			d.problemAt(items[i], "%s %s", d.show(items[i], e), msg)
		}
	}
	if len(list) == 0 && d.problems.none(p.path) {
		d.problemAt(p, "is empty; list at least one host, like [%s]", example)
	}
	return list
}

// http decodes the http section: where http steps may call.
func (d *decoder) http(p pair) *HTTP {
	if p.key == nil {
		return nil
	}
	h := &HTTP{Line: p.key.Line}
	f := d.fields(p.val, p.path, p.line(), "allow")
	if q, ok := f["allow"]; ok {
		h.Allow = d.allowList(q, "api.example.com")
	} else {
		d.required(p, f, "allow", "the hosts http steps may call, like allow: [api.example.com, \"http://10.0.0.5:8080\"]")
	}
	return h
}

// tokenHint names the kind of Slack token a value looks like, from its
// public prefix only.
func tokenHint(s string) string {
	switch {
	case strings.HasPrefix(s, "xoxb-"):
		return "; this is a bot token (xoxb-): it belongs in bot_token"
	case strings.HasPrefix(s, "xapp-"):
		return "; this is an app-level token (xapp-): it belongs in app_token"
	case strings.HasPrefix(s, "xoxp-"):
		return "; this is a user token (xoxp-): use the Bot User OAuth Token instead"
	}
	return ""
}

func (d *decoder) retention(p pair) Retention {
	r := Retention{Audit: DefaultAuditRetention, Runs: DefaultRunRetention, Deliveries: DefaultDeliveryRetention}
	if p.key == nil {
		return r
	}
	f := d.fields(p.val, p.path, p.line(), "audit", "runs", "deliveries")
	for _, k := range []struct {
		name string
		to   *time.Duration
	}{{"audit", &r.Audit}, {"runs", &r.Runs}, {"deliveries", &r.Deliveries}} {
		if q, ok := f[k.name]; ok {
			if v, ok := d.days(q); ok {
				*k.to = v
			}
		}
	}
	if q := f["deliveries"]; q.key != nil && r.Deliveries > 0 && r.Deliveries < 24*time.Hour {
		d.problemAt(q, "must be at least 24h (or 0 to keep them forever): EventBridge redelivers an event for up to 24 hours, and a key forgotten sooner would start its workflows twice")
	}
	return r
}

// days decodes a retention: a number of days (90d), a duration (36h), or 0
// for forever.
func (d *decoder) days(p pair) (time.Duration, bool) {
	s, ok := d.str(p)
	if !ok {
		return 0, false
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if v, err := strconv.Atoi(n); err == nil && v >= 0 && v <= 100000 {
			return time.Duration(v) * 24 * time.Hour, true
		}
	} else if v, err := time.ParseDuration(s); err == nil && v >= 0 {
		return v, true
	}
	d.problemAt(p, "expected a number of days like 90d, a duration like 36h, or 0 to keep forever, got %s", d.show(p, s))
	return 0, false
}

func (d *decoder) console(p pair) Console {
	if p.key == nil {
		return Console{}
	}
	f := d.fields(p.val, p.path, p.line(), "admin_token", "operator", "operators")
	var c Console
	c.AdminToken, _, _ = d.secret(f, "admin_token")
	if q, ok := f["operator"]; ok {
		if v, ok := d.str(q); ok {
			if !chatUserID(v) {
				d.problemAt(q, "%s is not a chat user id (one word, like U0OPS1)", d.show(q, v))
			}
			c.Operator = v
		}
	}
	if q, ok := f["operators"]; ok {
		c.Operators = map[string]Secret{}
		seen := map[string]string{string(c.AdminToken): "admin_token"}
		for _, op := range d.pairs(q.val, q.path, q.line()) {
			d.hidden[op.path] = true
			if !chatUserID(op.name) {
				d.problemAt(op, "%q is not a chat user id (one word, like U0OPS1)", op.name)
			}
			token, ok := d.str(op)
			switch {
			case !ok:
				continue
			case len(token) < 16:
				d.problemAt(op, "is too short: a login token needs at least 16 characters (e.g. openssl rand -hex 16)")
			case seen[token] != "":
				d.problemAt(op, "is the same token as %s: each person needs their own", seen[token])
			}
			seen[token] = "operators." + op.name
			c.Operators[op.name] = Secret(token)
		}
	}
	return c
}

// chatUserID reports whether s can be a chat user id: one short word.
func chatUserID(s string) bool {
	return s != "" && len(s) <= 64 && !strings.ContainsFunc(s, unicode.IsSpace)
}

var (
	cloudName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	// An instance id as EC2 (i- and 8 or 17 hex digits) or ECS
	// (i-bp1..., lower-case alphanumerics) writes it.
	instanceID = regexp.MustCompile(`^i-[0-9a-z]{8,}$`)
)

// checkID reports whether id is an instance id of the cloud type provider
// (any registered type when provider is not one), and what one looks like
// when it is not.
func (d *decoder) checkID(id, provider string) (bool, string) {
	if t, ok := d.registry.Cloud(provider); ok {
		return t.IDFunc(id)
	}
	return instanceID.MatchString(id), "an instance id (i- and at least 8 lower-case letters or digits, like i-0123456789abcdef0 or i-bp1a2b3c4d5e6f7g8h9i)"
}

// named decodes a section of named entries (clouds, mailboxes, queues) in
// file order, each with one.
func named[T any](d *decoder, p pair, one func(pair) T) []T {
	if p.key == nil {
		return nil
	}
	var out []T
	for _, np := range d.pairs(p.val, p.path, p.line()) {
		out = append(out, one(np))
	}
	return out
}

func (d *decoder) cloud(p pair) Cloud {
	c := Cloud{Name: p.name, Line: p.key.Line}
	if !cloudName.MatchString(p.name) {
		d.add(p.key.Line, p.path, "a cloud name is letters, digits, - and _ (like main or aws-prod)")
	}
	providers := d.registry.CloudNames()
	var rest []pair
	var typ *switchboard.CloudType
	for _, q := range d.pairs(p.val, p.path, p.line()) {
		if q.name != "provider" {
			rest = append(rest, q)
			continue
		}
		c.Provider, _ = d.str(q)
		if t, ok := d.registry.Cloud(c.Provider); ok {
			typ = t
		} else if c.Provider != "" {
			d.problemAt(q, "unknown provider %s (providers: %s)", d.show(q, c.Provider), strings.Join(providers, ", "))
		}
	}
	if c.Provider == "" && d.problems.none(childPath(p.path, "provider")) {
		d.add(p.key.Line, childPath(p.path, "provider"), "is required: one of %s", strings.Join(providers, ", "))
	}
	if typ == nil {
		return c
	}
	// A key another provider takes says which: the usual slip is an aws
	// option on a sim cloud.
	elsewhere := func(key string) string {
		var takers []string
		for _, name := range providers {
			if t, _ := d.registry.Cloud(name); t != typ {
				if _, ok := findParam(t.Params, key); ok {
					takers = append(takers, name)
				}
			}
		}
		if len(takers) == 0 {
			return ""
		}
		return fmt.Sprintf("applies only to %s clouds; this cloud is %s", andList(takers), typ.Name)
	}
	at := map[string]pair{}
	c.Options = d.object(p, rest, typ.Params, elsewhere, typ.Name, at)
	if typ.CheckFunc != nil && d.problems.none(p.path) {
		for _, pp := range typ.CheckFunc(c.Options) {
			if q, ok := at[pp.Param]; ok {
				d.problemAt(q, "%s", pp.Msg)
			} else if q, ok := at[pp.At]; ok {
				d.add(q.key.Line, childPath(p.path, pp.Param), "%s", pp.Msg)
			} else {
				d.add(p.key.Line, childPath(p.path, pp.Param), "%s", pp.Msg)
			}
		}
	}
	return c
}

// object decodes the keys of a mapping (pairs, of the mapping p) against
// params: unknown keys, types, required keys, and instance ids of provider.
// elsewhere, when it has something to say about an unknown key, says it.
// at collects every decoded key by its path relative to the options, for
// problems a CheckFunc finds later.
func (d *decoder) object(p pair, pairs []pair, params []switchboard.Param, elsewhere func(string) string, provider string, at map[string]pair) map[string]any {
	out := map[string]any{}
	known := names(params, func(p switchboard.Param) string { return p.Name })
	rel := func(q pair) string { return strings.TrimPrefix(q.path, p.path+".") }
	for _, q := range pairs {
		prm, ok := findParam(params, q.name)
		if !ok {
			if msg := elsewhere(q.name); msg != "" {
				d.problemAt(q, "%s", msg)
			} else {
				d.add(q.key.Line, q.path, "%s", unknownKey(q.name, known))
			}
			continue
		}
		at[rel(q)] = q
		if v, ok := d.option(q, prm, provider, rel(q), at); ok {
			out[q.name] = v
		}
	}
	for _, prm := range params {
		if _, ok := out[prm.Name]; prm.Required && !ok && d.problems.none(childPath(p.path, prm.Name)) {
			msg := "is required"
			if prm.Hint != "" {
				msg += ": " + prm.Hint
			}
			d.add(p.line(), childPath(p.path, prm.Name), "%s", msg)
		}
	}
	return out
}

// option decodes one option of a cloud: nested mappings and lists of them
// by their fields, secrets as Secret, the rest as step parameters are.
func (d *decoder) option(q pair, prm switchboard.Param, provider, rel string, at map[string]pair) (any, bool) {
	nested := func(item pair, itemRel string) map[string]any {
		sub := map[string]pair{}
		m := d.object(item, d.pairs(item.val, item.path, item.line()), prm.Fields, func(string) string { return "" }, provider, sub)
		for k, v := range sub {
			at[childPath(itemRel, k)] = v
		}
		return m
	}
	switch {
	case prm.Secret:
		d.hidden[q.path] = true
		s, ok := d.str(q)
		return Secret(s), ok
	case prm.Type == switchboard.TypeObject:
		return nested(q, rel), true
	case prm.Type == switchboard.TypeObjects:
		v := resolve(q.val)
		if isNull(v) {
			return []any{}, true
		}
		if v.Kind != yaml.SequenceNode {
			d.problemAt(q, "expected a list like %s, got %s", prm.Example, kindName(v))
			return nil, false
		}
		items := []any{}
		for i, item := range v.Content {
			ip := pair{name: q.name, key: q.key, val: item, path: itemPath(q.path, i)}
			items = append(items, nested(ip, itemPath(rel, i)))
		}
		return items, true
	case prm.Type == switchboard.TypeIP:
		s := d.ip(q)
		return s, s != ""
	case prm.Type == switchboard.TypeDuration:
		if _, ok := d.duration(q); !ok {
			return nil, false
		}
		s, _ := d.str(q)
		return s, true
	}
	v, _, ok := d.param(q, prm, &stepScope{cfg: &Config{registry: d.registry}})
	if !ok {
		return nil, false
	}
	if str, isStr := v.(string); isStr {
		switch {
		case prm.Instance:
			if ok, want := d.checkID(str, provider); !ok {
				d.problemAt(q, "%s is not %s", d.show(q, str), want)
			}
		case prm.URL:
			if msg := checkHTTPURL(str, prm.Example); msg != "" {
				d.problemAt(q, "%s", msg)
			}
		}
	}
	return v, true
}

// knownIDs returns the instance ids a cloud's config lists, for a cloud
// whose provider knows no others (the simulator).
func (d *decoder) knownIDs(c *Cloud) ([]string, bool) {
	if c == nil {
		return nil, false
	}
	t, ok := d.registry.Cloud(c.Provider)
	if !ok || t.KnownIDsFunc == nil {
		return nil, false
	}
	return t.KnownIDsFunc(c.Options), true
}

func findParam(params []switchboard.Param, name string) (switchboard.Param, bool) {
	for _, p := range params {
		if p.Name == name {
			return p, true
		}
	}
	return switchboard.Param{}, false
}

// andList joins names as "a", "a and b", "a, b and c".
func andList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// accessKey decodes a static key pair (access_key_id, access_key_secret)
// of the mapping p: both or neither.
func (d *decoder) accessKey(p pair, f map[string]pair) (string, Secret) {
	var id string
	if q, ok := f["access_key_id"]; ok {
		id, _ = d.str(q)
	}
	secret, sp, _ := d.secret(f, "access_key_secret")
	if id != "" && secret == "" && sp.key == nil {
		d.add(f["access_key_id"].key.Line, childPath(p.path, "access_key_secret"), "is required with access_key_id")
	}
	if id == "" && secret != "" {
		d.add(sp.key.Line, childPath(p.path, "access_key_id"), "is required with access_key_secret")
	}
	return id, secret
}

func (d *decoder) assumeRole(p pair) AssumeRole {
	var r AssumeRole
	f := d.fields(p.val, p.path, p.line(), "role_arn", "external_id")
	if q, ok := f["role_arn"]; ok {
		if s, ok := d.str(q); ok {
			if !strings.HasPrefix(s, "arn:") && !strings.HasPrefix(s, "acs:ram::") {
				d.problemAt(q, "must be a role ARN, like arn:aws:iam::123456789012:role/switchboard (AWS) or acs:ram::123456789012:role/switchboard (Alibaba)")
			}
			r.RoleARN = s
		}
	}
	if q, ok := f["external_id"]; ok {
		r.ExternalID, _ = d.str(q)
	}
	if r.RoleARN == "" && d.problems.none(childPath(p.path, "role_arn")) {
		d.add(p.key.Line, childPath(p.path, "role_arn"), "is required in assume_role")
	}
	return r
}

func (d *decoder) ip(p pair) string {
	s, ok := d.str(p)
	if !ok {
		return ""
	}
	if _, err := netip.ParseAddr(s); err != nil {
		d.problemAt(p, "%s is not an IP address", d.show(p, s))
	}
	return s
}

func (d *decoder) groups(p pair) map[string][]string {
	if p.key == nil {
		return nil
	}
	out := map[string][]string{}
	for _, gp := range d.pairs(p.val, p.path, p.line()) {
		if gp.name == "" || strings.ContainsFunc(gp.name, unicode.IsSpace) {
			d.add(gp.key.Line, gp.path, "a group name cannot be empty or hold spaces")
		}
		users, items := d.list(gp, "U0OPS1, U0OPS2")
		for i, u := range users {
			switch {
			case strings.HasPrefix(u, "group:"):
				d.problemAt(items[i], "a group lists user ids; it cannot contain another group")
			default:
				d.checkUser(items[i], u)
			}
		}
		out[gp.name] = users
	}
	return out
}

// names decodes the names the console shows for user and channel ids.
func (d *decoder) names(p pair) map[string]string {
	if p.key == nil {
		return nil
	}
	out := map[string]string{}
	for _, np := range d.pairs(p.val, p.path, p.line()) {
		name, ok := d.str(np)
		switch {
		case np.name == "" || strings.ContainsFunc(np.name, unicode.IsSpace) || strings.HasPrefix(np.name, "@") || strings.HasPrefix(np.name, "#"):
			d.add(np.key.Line, np.path, "%q is not a user or channel id; write the id, like U0OPS1: ana or C0OPS: ops", np.name)
		case !ok:
		case strings.TrimSpace(name) == "":
			d.problemAt(np, "is empty; write the name the console shows for %s", np.name)
		default:
			out[np.name] = strings.TrimSpace(name)
		}
	}
	return out
}

// checkUser reports a user entry that is not a Slack user id, and whether
// it is one.
func (d *decoder) checkUser(p pair, u string) bool {
	switch {
	case strings.HasPrefix(u, "@"):
		d.problemAt(p, "%s is a name; list the user id (like U0OPS1, from the user's profile: Copy member ID)", d.show(p, u))
	case u == "" || strings.ContainsFunc(u, unicode.IsSpace):
		d.problemAt(p, "%s is not a user id (like U0OPS1)", d.show(p, u))
	default:
		return true
	}
	return false
}

func (d *decoder) commands(p pair, c *Config) []switchboard.CommandSpec {
	if p.key == nil {
		return nil
	}
	var out []switchboard.CommandSpec
	for _, cp := range d.pairs(p.val, p.path, p.line()) {
		out = append(out, d.command(cp, c))
	}
	return out
}

var commandName = regexp.MustCompile(`^/[^\s/]+$`)

func (d *decoder) command(p pair, c *Config) switchboard.CommandSpec {
	cmd := switchboard.CommandSpec{Name: p.name}
	if !commandName.MatchString(p.name) {
		d.add(p.key.Line, p.path, "a command name starts with / and has no spaces, like /ec2")
	}
	f := d.fields(p.val, p.path, p.line(), "cloud", "allow", "instances", "actions", "policy")

	// The cloud the command acts on decides how its targets are checked.
	var cloud *Cloud
	if q, ok := f["cloud"]; ok {
		if s, ok := d.str(q); ok {
			cmd.Cloud = s
			if cl, ok := c.Cloud(s); ok {
				cloud = &cl
			} else {
				d.problemAt(q, "unknown cloud %s (%s)", d.show(q, s), defined("clouds", cloudNames(c.Clouds)))
			}
		}
	} else if len(c.Clouds) == 1 {
		cloud = &c.Clouds[0]
		cmd.Cloud = cloud.Name
	} else {
		d.add(p.key.Line, childPath(p.path, "cloud"), "is required: which cloud does this command act on? (%s)", defined("clouds", cloudNames(c.Clouds)))
	}

	cmd.Access = d.access(f["allow"], p, c)
	cmd.Instances = d.targets(f["instances"], p, cloud)
	cmd.Actions = d.actions(f["actions"])
	cmd.Policy = d.policy(f["policy"], c)
	return cmd
}

func cloudNames(clouds []Cloud) []string {
	names := make([]string, len(clouds))
	for i, cl := range clouds {
		names[i] = cl.Name
	}
	return names
}

func defined(what string, names []string) string {
	if len(names) == 0 {
		return "no " + what + " are defined"
	}
	return what + " defined: " + strings.Join(names, ", ")
}

func (d *decoder) access(p pair, cmd pair, c *Config) switchboard.Access {
	var a switchboard.Access
	usersPath, line := childPath(cmd.path, "allow.users"), cmd.key.Line
	f := map[string]pair{}
	if p.key != nil {
		f = d.fields(p.val, p.path, p.line(), "users", "channels")
		line = p.key.Line
	}
	bad := false
	if q, ok := f["users"]; ok {
		line = q.key.Line
		a.Users, bad = d.users(q, c)
	}
	if len(a.Users) == 0 && !bad {
		d.add(line, usersPath, "nobody could use this command; list users or group:NAME")
	}
	if q, ok := f["channels"]; ok {
		channels, items := d.list(q, "C0OPS")
		for i, ch := range channels {
			d.checkChannel(items[i], ch)
		}
		if len(channels) > 0 {
			a.Channels = channels
		}
	}
	return a
}

// users decodes a list of user ids and group:NAME, with groups expanded
// and each user listed once. bad reports a problem with an entry.
func (d *decoder) users(p pair, c *Config) (users []string, bad bool) {
	n := len(d.problems)
	entries, items := d.list(p, "group:ops, U0OPS1")
	bad = len(d.problems) > n
	for i, u := range entries {
		name, isGroup := strings.CutPrefix(u, "group:")
		if !isGroup {
			if !d.checkUser(items[i], u) {
				bad = true
			} else if !slices.Contains(users, u) {
				users = append(users, u)
			}
			continue
		}
		members, ok := c.Groups[name]
		if !ok {
			d.problemAt(items[i], "unknown group %s (%s)", d.show(items[i], name), defined("groups", sortedKeys(c.Groups)))
			bad = true
			continue
		}
		for _, m := range members {
			if !slices.Contains(users, m) {
				users = append(users, m)
			}
		}
	}
	return users, bad
}

// webhookPrefix marks a channel target that is a Slack incoming webhook,
// by its name in slack.webhooks: the URL itself is a credential and stays
// in the config.
const webhookPrefix = "webhook:"

// channelTarget checks where a run talks (a workflow's channel, a notify
// step's channel) and returns it as runs record it: a channel id, or
// webhook:NAME for a Slack incoming webhook, given by its name in
// slack.webhooks or by its URL (which is then kept there under a name of
// its own, so that no run, message or audit line holds it).
func (d *decoder) channelTarget(p pair, ch string, c *Config) string {
	switch {
	case strings.HasPrefix(ch, "https://"), strings.HasPrefix(ch, "http://"):
		d.hidden[p.path] = true
		if msg := checkWebhookURL(ch); msg != "" {
			d.problemAt(p, "%s", msg)
			return ch
		}
		sum := sha256.Sum256([]byte(ch))
		name := fmt.Sprintf("url-%x", sum[:4])
		if c.Slack.Webhooks == nil {
			c.Slack.Webhooks = map[string]Secret{}
		}
		c.Slack.Webhooks[name] = Secret(ch)
		return webhookPrefix + name
	case strings.HasPrefix(ch, webhookPrefix):
		name := strings.TrimPrefix(ch, webhookPrefix)
		if _, ok := c.Slack.Webhooks[name]; !ok {
			d.problemAt(p, "unknown webhook %q (%s)", name, defined("slack.webhooks", slices.Sorted(maps.Keys(c.Slack.Webhooks))))
		}
		return ch
	}
	d.checkChannel(p, ch)
	return ch
}

// checkWebhookURL returns what is wrong with a Slack incoming webhook URL,
// or "". It must be https, except on loopback for a test server.
func checkWebhookURL(s string) string {
	const example = "https://hooks.slack.com/services/T000/B000/XXXX"
	if msg := checkHTTPURL(s, example); msg != "" {
		return msg
	}
	u, _ := url.Parse(s)
	if u.Scheme != "https" && !isLoopback(u.Hostname()) {
		return "must be an https:// URL (plain http only to a loopback test server), like " + example
	}
	return ""
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// checkChannel reports a channel entry that is not a Slack channel id.
func (d *decoder) checkChannel(p pair, ch string) {
	switch {
	case strings.HasPrefix(ch, "#"):
		d.problemAt(p, "%s is a channel name; list the channel id (like C0OPS, at the bottom of the channel's About tab)", d.show(p, ch))
	case ch == "" || strings.ContainsFunc(ch, unicode.IsSpace):
		d.problemAt(p, "%s is not a channel id (like C0OPS)", d.show(p, ch))
	}
}

func (d *decoder) targets(p pair, cmd pair, cloud *Cloud) []switchboard.TargetSpec {
	if p.key == nil {
		d.add(cmd.key.Line, childPath(cmd.path, "instances"), "is required: name the instances this command may touch, like tools: { id: i-0123456789abcdef0 } or web: { tags: { role: web } }")
		return nil
	}
	var out []switchboard.TargetSpec
	tps := d.pairs(p.val, p.path, p.line())
	if len(tps) == 0 && d.problems.none(p.path) {
		d.problemAt(p, "is empty: name the instances this command may touch")
	}
	for _, tp := range tps {
		t := switchboard.TargetSpec{Alias: tp.name}
		if tp.name == "" || strings.ContainsFunc(tp.name, unicode.IsSpace) {
			d.add(tp.key.Line, tp.path, "a target name cannot be empty or hold spaces (people type it after the action)")
		}
		f := d.fields(tp.val, tp.path, tp.line(), "id", "tags", "elastic_ip")
		idp, hasID := f["id"]
		tagp, hasTags := f["tags"]
		if hasID {
			if s, ok := d.str(idp); ok {
				t.ID = s
				provider := ""
				if cloud != nil {
					provider = cloud.Provider
				}
				if ok, want := d.checkID(s, provider); !ok {
					d.problemAt(idp, "%s is not %s", d.show(idp, s), want)
				} else if known, listed := d.knownIDs(cloud); listed && !slices.Contains(known, s) {
					d.problemAt(idp, "instance %s is not in cloud %q (a %s cloud has only the instances listed under clouds.%s.instances)", d.show(idp, s), cloud.Name, cloud.Provider, cloud.Name)
				}
			}
		}
		if hasTags {
			t.Tags = d.strMap(tagp)
		}
		switch {
		case hasID && hasTags:
			d.add(tp.key.Line, tp.path, "has both id and tags; a target is one instance (id) or a tag selector (tags), not both")
		case !hasID && !hasTags:
			d.add(tp.key.Line, tp.path, "needs id (one instance) or tags (a selector), like { id: i-0123456789abcdef0 } or { tags: { role: web } }")
		case hasTags && len(t.Tags) == 0 && d.problems.none(tagp.path):
			d.problemAt(tagp, "is empty; a selector names at least one tag, like { role: web }")
		}
		if q, ok := f["elastic_ip"]; ok {
			if s, ok := d.str(q); ok {
				if a, err := netip.ParseAddr(s); err != nil || !a.Is4() {
					d.problemAt(q, "%s is not an IPv4 address (an Elastic IP looks like 107.20.248.29)", d.show(q, s))
				} else if !hasID {
					d.problemAt(q, "needs an id target: an Elastic IP attaches to one instance")
				}
				t.ElasticIP = s
			}
		}
		out = append(out, t)
	}
	return out
}

func (d *decoder) actions(p pair) []string {
	if p.key == nil {
		return slices.Clone(switchboard.AllActions)
	}
	all := strings.Join(switchboard.AllActions, ", ")
	n := len(d.problems)
	names, items := d.list(p, "status, start, stop")
	if len(names) == 0 && len(d.problems) == n {
		d.problemAt(p, "is empty; remove the key to allow every action (%s) or list some", all)
	}
	var out []string
	for i, a := range names {
		switch {
		case !slices.Contains(switchboard.AllActions, a):
			if s := suggest(a, switchboard.AllActions); s != "" {
				d.problemAt(items[i], "unknown action %s; did you mean %q? (actions: %s)", d.show(items[i], a), s, all)
			} else {
				d.problemAt(items[i], "unknown action %s (actions: %s)", d.show(items[i], a), all)
			}
		case slices.Contains(out, a):
			d.problemAt(items[i], "action %s is listed twice", d.show(items[i], a))
		default:
			out = append(out, a)
		}
	}
	return out
}
