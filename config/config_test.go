package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/config"
)

// env returns a getenv that reads from m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var exampleEnv = map[string]string{
	"SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5",
	"SLACK_BOT_TOKEN":      "xoxb-1234-5678-abcdef",
	"SLACK_APP_TOKEN":      "xapp-1-A0-1234-abcdef",
}

func TestLoad_example(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("testdata/example.yaml", env(exampleEnv), registry)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}

	if cfg.File != "testdata/example.yaml" || cfg.Listen != "127.0.0.1:8080" || cfg.Store != "sqlite://./data/switchboard.db" || cfg.DataDir != "./data" {
		t.Errorf("file, listen, store, data dir = %q, %q, %q, %q", cfg.File, cfg.Listen, cfg.Store, cfg.DataDir)
	}
	if got := cfg.Slack.SigningSecret.Value(); got != exampleEnv["SLACK_SIGNING_SECRET"] {
		t.Errorf("signing secret = %q", got)
	}
	if cfg.Slack.BotToken.Value() != exampleEnv["SLACK_BOT_TOKEN"] || cfg.Slack.AppToken.Value() != exampleEnv["SLACK_APP_TOKEN"] {
		t.Errorf("tokens not read from the environment")
	}
	if cfg.Slack.APIURL != "https://slack.com/api/" || cfg.Slack.AllowLegacyToken || !cfg.Slack.Enabled() || !cfg.Slack.SocketMode() {
		t.Errorf("slack = %+v", cfg.Slack)
	}
	if cfg.Log != (config.Log{Level: "info", Format: "text"}) {
		t.Errorf("log = %+v, want the defaults", cfg.Log)
	}

	wantCloud := config.Cloud{
		Name: "main", Provider: "sim", Line: 9,
		Options: map[string]any{"instances": []any{
			map[string]any{"id": "i-0123456789abcdef0", "name": "tools", "state": "stopped", "tags": map[string]string{"env": "dev"}},
			map[string]any{"id": "i-0fedcba9876543210", "name": "web-1", "state": "running", "tags": map[string]string{"env": "prod", "role": "web"}},
		}},
	}
	if len(cfg.Clouds) != 1 || !reflect.DeepEqual(cfg.Clouds[0], wantCloud) {
		t.Errorf("clouds = %#v\nwant [%#v]", cfg.Clouds, wantCloud)
	}
	if got, ok := cfg.Cloud("main"); !ok || got.Name != "main" {
		t.Errorf(`Cloud("main") = %v, %v`, got.Name, ok)
	}
	if _, ok := cfg.Cloud("nope"); ok {
		t.Errorf(`Cloud("nope") found a cloud`)
	}
	if want := map[string][]string{"ops": {"U0OPS1", "U0OPS2"}}; !reflect.DeepEqual(cfg.Groups, want) {
		t.Errorf("groups = %v", cfg.Groups)
	}

	want := switchboard.CommandSpec{
		Name:   "/ec2",
		Cloud:  "main",
		Access: switchboard.Access{Users: []string{"U0OPS1", "U0OPS2"}, Channels: []string{"C0OPS"}},
		Instances: []switchboard.TargetSpec{
			{Alias: "tools", ID: "i-0123456789abcdef0", ElasticIP: "107.20.248.29"},
			{Alias: "web", Tags: map[string]string{"role": "web"}},
		},
		Actions: []string{"status", "start", "stop", "reboot", "list"},
	}
	if len(cfg.Commands) != 1 || !reflect.DeepEqual(cfg.Commands[0], want) {
		t.Errorf("commands = %#v\nwant [%#v]", cfg.Commands, want)
	}
	got, ok := cfg.Command("/ec2")
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf(`Command("/ec2") = %#v, %v`, got, ok)
	}
	if ok, _ := got.Access.Allows("U0OPS2", "C0OPS"); !ok {
		t.Errorf("U0OPS2 (in group ops) is refused in C0OPS")
	}
	if _, ok := cfg.Command("/ecs"); ok {
		t.Errorf(`Command("/ecs") found a command`)
	}
}

func TestLoad_missingFile(t *testing.T) {
	t.Parallel()
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"), nil, registry)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}

func TestParse_defaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, yaml string }{
		{"empty file", ""},
		{"comments only", "# nothing yet\n"},
		{"null document", "~\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Parse("c.yaml", []byte(tc.yaml), nil, registry)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if cfg.Listen != config.DefaultListen || cfg.DataDir != "./data" || cfg.Store != "sqlite://./data/switchboard.db" {
				t.Errorf("listen, data dir, store = %q, %q, %q", cfg.Listen, cfg.DataDir, cfg.Store)
			}
			if cfg.Slack.Enabled() || cfg.Slack.APIURL != config.DefaultSlackAPIURL || cfg.Log.Level != "info" || cfg.Log.Format != "text" {
				t.Errorf("slack, log = %+v, %+v", cfg.Slack, cfg.Log)
			}
		})
	}
}

func TestParse_values(t *testing.T) {
	t.Parallel()
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte("xoxb-from-file\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := `
x-dev-tags: &devtags { env: dev, team: "${TEAM}" }
listen: ${HOST:-0.0.0.0}:${PORT}
data_dir: /var/lib/switchboard
log: { level: debug, format: json }
slack:
  signing_secret: ${SIGNING}
  bot_token: ${file:` + secretFile + `}
  app_token: ${APP_TOKEN:-}
  api_url: http://127.0.0.1:9999/api
  verification_token: legacy
  allow_legacy_token: true
console: { admin_token: "$${NOT_EXPANDED}" }
clouds:
  main:
    provider: sim
    region: sim-east-1
    sim: { pending_duration: 1500ms, stopping_duration: 2s, shutting_down_duration: 1m, throttle: false }
    instances:
      - &tools { id: i-0123456789abcdef0, name: tools, type: t3.micro, public_ip: 203.0.113.5, private_ip: 10.0.0.5, tags: *devtags }
  prod:
    provider: aws
    region: us-east-1
    endpoint: http://127.0.0.1:5000
    profile: prod
    assume_role: { role_arn: "arn:aws:iam::123456789012:role/switchboard", external_id: sb }
  cn:
    provider: alibaba
    region: cn-hangzhou
    access_key_id: LTAI
    access_key_secret: ${ALI_SECRET}
groups:
  ops: [U0OPS1, U0OPS2]
  dev: [U0DEV1, U0OPS1]
commands:
  /ec2: &cmd
    cloud: prod
    allow: { users: [group:ops, group:dev, U0BOSS] }
    instances:
      api: { id: i-0abcdef1234567890 }
      web: { tags: { role: web, env: prod } }
    actions: [status, list]
  /ecs:
    <<: *cmd
    cloud: cn
    instances:
      api: { id: i-bp1a2b3c4d5e6f7g8h9i }
  /sim:
    allow: { users: [U0OPS1], channels: [] }
    cloud: main
    instances: { tools: { id: i-0123456789abcdef0 } }
`
	cfg, err := config.Parse("c.yaml", []byte(yaml), env(map[string]string{
		"PORT": "9090", "SIGNING": "s3cret", "TEAM": "core", "ALI_SECRET": "ali",
	}), registry)
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", what, got, want)
		}
	}
	check("listen", cfg.Listen, "0.0.0.0:9090")
	check("data dir", cfg.DataDir, "/var/lib/switchboard")
	check("store", cfg.Store, "sqlite:///var/lib/switchboard/switchboard.db")
	driver, dsn := cfg.StoreDSN()
	check("store dsn", []string{driver, dsn}, []string{"sqlite", "/var/lib/switchboard/switchboard.db"})
	check("log", cfg.Log, config.Log{Level: "debug", Format: "json"})
	check("slog level", cfg.Log.SlogLevel(), slog.LevelDebug)
	check("bot token from file, newlines trimmed", cfg.Slack.BotToken.Value(), "xoxb-from-file")
	check("empty app token", cfg.Slack.AppToken, config.Secret(""))
	check("api url gains its slash", cfg.Slack.APIURL, "http://127.0.0.1:9999/api/")
	check("legacy", []any{cfg.Slack.VerificationToken.Value(), cfg.Slack.AllowLegacyToken}, []any{"legacy", true})
	check("$${ is a literal ${", cfg.Console.AdminToken.Value(), "${NOT_EXPANDED}")

	check("sim cloud", cfg.Clouds[0], config.Cloud{
		Name: "main", Provider: "sim", Line: 15, Options: map[string]any{
			"region": "sim-east-1",
			"sim":    map[string]any{"pending_duration": "1500ms", "stopping_duration": "2s", "shutting_down_duration": "1m", "throttle": false},
			"instances": []any{map[string]any{
				"id": "i-0123456789abcdef0", "name": "tools", "type": "t3.micro",
				"public_ip": "203.0.113.5", "private_ip": "10.0.0.5", "tags": map[string]string{"env": "dev", "team": "core"},
			}},
		},
	})
	check("aws cloud", cfg.Clouds[1], config.Cloud{
		Name: "prod", Provider: "aws", Line: 21, Options: map[string]any{
			"region": "us-east-1", "endpoint": "http://127.0.0.1:5000", "profile": "prod",
			"assume_role": map[string]any{"role_arn": "arn:aws:iam::123456789012:role/switchboard", "external_id": "sb"},
		},
	})
	check("alibaba cloud", cfg.Clouds[2], config.Cloud{
		Name: "cn", Provider: "alibaba", Line: 27, Options: map[string]any{"region": "cn-hangzhou", "access_key_id": "LTAI", "access_key_secret": config.Secret("ali")},
	})

	names := []string{}
	for _, c := range cfg.Commands {
		names = append(names, c.Name)
	}
	check("commands in file order", names, []string{"/ec2", "/ecs", "/sim"})
	check("users: groups expanded, each once, in order", cfg.Commands[0].Access.Users, []string{"U0OPS1", "U0OPS2", "U0DEV1", "U0BOSS"})
	check("targets in file order", cfg.Commands[0].Instances, []switchboard.TargetSpec{
		{Alias: "api", ID: "i-0abcdef1234567890"},
		{Alias: "web", Tags: map[string]string{"role": "web", "env": "prod"}},
	})
	check("actions", cfg.Commands[0].Actions, []string{"status", "list"})
	// The merge brings allow and actions; explicit keys win.
	check("merged command", cfg.Commands[1], switchboard.CommandSpec{
		Name: "/ecs", Cloud: "cn",
		Access:    cfg.Commands[0].Access,
		Instances: []switchboard.TargetSpec{{Alias: "api", ID: "i-bp1a2b3c4d5e6f7g8h9i"}},
		Actions:   []string{"status", "list"},
	})
	check("empty channels: any channel", cfg.Commands[2].Access.Channels, []string(nil))
	check("absent actions: all", cfg.Commands[2].Actions, switchboard.AllActions)
}

func TestParse_problems(t *testing.T) {
	t.Parallel()
	// A valid configuration the cases start from; line numbers below
	// count from its first line.
	const base = `clouds:
  main:
    provider: sim
    instances:
      - { id: i-0123456789abcdef0, name: tools, state: stopped }
groups:
  ops: [U0OPS1]
commands:
  /ec2:
    cloud: main
    allow: { users: [group:ops] }
    instances:
      tools: { id: i-0123456789abcdef0 }
`
	if _, err := config.Parse("c.yaml", []byte(base), nil, registry); err != nil {
		t.Fatalf("the base is not valid:\n%v", err)
	}
	edit := func(old, new string) string {
		if !strings.Contains(base, old) {
			t.Fatalf("base has no %q", old)
		}
		return strings.Replace(base, old, new, 1)
	}

	for _, tc := range []struct {
		name string
		yaml string
		// want holds the start of each problem line, in order; every
		// problem must be listed.
		want []string
		env  map[string]string
	}{
		{"unknown key with suggestion", "lisen: :8080\n",
			[]string{`c.yaml:1: lisen: unknown key "lisen"; did you mean "listen"?`}, nil},
		{"unknown key, other case and dashes", "slack:\n  Signing-Secret: x\n",
			[]string{`c.yaml:1: slack.signing_secret: is required`, `c.yaml:2: slack.Signing-Secret: unknown key "Signing-Secret"; did you mean "signing_secret"?`}, nil},
		{"unknown key without suggestion", edit("    cloud: main\n", "    cloud: main\n    owner: bob\n"),
			[]string{`c.yaml:11: commands./ec2.owner: unknown key "owner" (known keys: cloud, allow, instances, actions, policy)`}, nil},
		{"bad type: list for a string", "listen: [a, b]\n",
			[]string{`c.yaml:1: listen: expected a string, got a list`}, nil},
		{"bad type: string for a list", edit("users: [group:ops]", "users: group:ops"),
			[]string{`c.yaml:11: commands./ec2.allow.users: expected a list like [group:ops, U0OPS1], got a string`}, nil},
		{"bad type: list for a mapping", "clouds: [main]\n",
			[]string{`c.yaml:1: clouds: expected a mapping (key: value), got a list`}, nil},
		{"top level is not a mapping", "- listen\n",
			[]string{`c.yaml:1: expected a mapping (key: value), got a list`}, nil},
		{"unset env var", "listen: ${LISTEN}\n",
			[]string{`c.yaml:1: listen: environment variable LISTEN is not set`}, nil},
		{"bad reference", "listen: ${1X}\n",
			[]string{`c.yaml:1: listen: bad reference ${1X}`}, nil},
		{"unterminated reference", "listen: ${LISTEN\n",
			[]string{`c.yaml:1: listen: unterminated "${"`}, nil},
		{"missing file secret", "slack:\n  signing_secret: ${file:/nonexistent-switchboard/secret}\n",
			[]string{`c.yaml:2: slack.signing_secret: cannot read secret file: open /nonexistent-switchboard/secret: no such file or directory`}, nil},
		{"file secret is a directory", "slack:\n  signing_secret: ${file:/}\n",
			[]string{`c.yaml:2: slack.signing_secret: cannot read secret file: / is not a regular file`}, nil},
		{"unknown group", edit("group:ops", "group:opz"),
			[]string{`c.yaml:11: commands./ec2.allow.users[0]: unknown group "opz" (groups defined: ops)`}, nil},
		{"user name instead of id", edit("[group:ops]", "[group:ops, \"@bob\"]"),
			[]string{`c.yaml:11: commands./ec2.allow.users[1]: "@bob" is a name; list the user id`}, nil},
		{"name for a name", edit("ops: [U0OPS1]\n", "ops: [U0OPS1]\nnames: { \"@ana\": ana, U0OPS1: \"\" }\n"),
			[]string{`c.yaml:8: names.@ana: "@ana" is not a user or channel id; write the id, like U0OPS1: ana or C0OPS: ops`,
				`c.yaml:8: names.U0OPS1: is empty; write the name the console shows for U0OPS1`}, nil},
		{"console operators", base + "console:\n  admin_token: admin-token-0123456789\n  operator: ana smith\n  operators: { \"bad id\": ben-token-0123456789, U0OPS2: short, U0OPS3: admin-token-0123456789 }\n",
			[]string{`c.yaml:16: console.operator: "ana smith" is not a chat user id (one word, like U0OPS1)`,
				`c.yaml:17: console.operators.bad id: "bad id" is not a chat user id (one word, like U0OPS1)`,
				`c.yaml:17: console.operators.U0OPS2: is too short: a login token needs at least 16 characters`,
				`c.yaml:17: console.operators.U0OPS3: is the same token as admin_token: each person needs their own`}, nil},
		{"group inside a group", edit("ops: [U0OPS1]", "ops: [U0OPS1, group:dev]"),
			[]string{`c.yaml:7: groups.ops[1]: a group lists user ids; it cannot contain another group`}, nil},
		{"nobody allowed", edit("allow: { users: [group:ops] }", "allow: { channels: [C0OPS] }"),
			[]string{`c.yaml:11: commands./ec2.allow.users: nobody could use this command; list users or group:NAME`}, nil},
		{"no allow at all", edit("    allow: { users: [group:ops] }\n", ""),
			[]string{`c.yaml:9: commands./ec2.allow.users: nobody could use this command; list users or group:NAME`}, nil},
		{"empty group leaves nobody", edit("ops: [U0OPS1]", "ops: []"),
			[]string{`c.yaml:11: commands./ec2.allow.users: nobody could use this command`}, nil},
		{"channel name instead of id", edit("allow: { users: [group:ops] }", "allow: { users: [group:ops], channels: [\"#ops\"] }"),
			[]string{`c.yaml:11: commands./ec2.allow.channels[0]: "#ops" is a channel name; list the channel id`}, nil},
		{"unknown cloud", edit("cloud: main", "cloud: mian"),
			[]string{`c.yaml:10: commands./ec2.cloud: unknown cloud "mian" (clouds defined: main)`}, nil},
		{"cloud required with two clouds", strings.Replace(edit("    cloud: main\n", ""), "groups:", "  aws:\n    provider: aws\ngroups:", 1),
			[]string{`c.yaml:11: commands./ec2.cloud: is required: which cloud does this command act on? (clouds defined: main, aws)`}, nil},
		{"endpoint with credentials", "clouds:\n  prod: { provider: aws, endpoint: \"http://u:p@127.0.0.1:5000\" }\n",
			[]string{`c.yaml:2: clouds.prod.endpoint: must not hold a user name or password`}, nil},
		{"bad id in the fleet", edit("- { id: i-0123456789abcdef0, name", "- { id: i-xyz, name"),
			[]string{`c.yaml:5: clouds.main.instances[0].id: "i-xyz" is not an instance id`, `c.yaml:13: commands./ec2.instances.tools.id: instance "i-0123456789abcdef0" is not in cloud "main"`}, nil},
		{"bad target id", edit("tools: { id: i-0123456789abcdef0 }", "tools: { id: 0123456789abcdef0 }"),
			[]string{`c.yaml:13: commands./ec2.instances.tools.id: "0123456789abcdef0" is not an instance id`}, nil},
		{"aws target id must be hex", "clouds: { prod: { provider: aws } }\ncommands:\n  /ec2:\n    allow: { users: [U1] }\n    instances: { api: { id: i-bp1a2b3c4d5e6f7g8h9i } }\n",
			[]string{`c.yaml:5: commands./ec2.instances.api.id: "i-bp1a2b3c4d5e6f7g8h9i" is not an EC2 instance id`}, nil},
		{"target id not in the sim fleet", edit("tools: { id: i-0123456789abcdef0 }", "tools: { id: i-0fedcba9876543210 }"),
			[]string{`c.yaml:13: commands./ec2.instances.tools.id: instance "i-0fedcba9876543210" is not in cloud "main"`}, nil},
		{"target with both id and tags", edit("tools: { id: i-0123456789abcdef0 }", "tools: { id: i-0123456789abcdef0, tags: { role: web } }"),
			[]string{`c.yaml:13: commands./ec2.instances.tools: has both id and tags`}, nil},
		{"target with neither", edit("tools: { id: i-0123456789abcdef0 }", "tools: {}"),
			[]string{`c.yaml:13: commands./ec2.instances.tools: needs id (one instance) or tags (a selector)`}, nil},
		{"empty tag selector", edit("tools: { id: i-0123456789abcdef0 }", "tools: { tags: {} }"),
			[]string{`c.yaml:13: commands./ec2.instances.tools.tags: is empty`}, nil},
		{"no targets", edit("    instances:\n      tools: { id: i-0123456789abcdef0 }\n", "    instances: {}\n"),
			[]string{`c.yaml:12: commands./ec2.instances: is empty`}, nil},
		{"elastic ip not IPv4", edit("tools: { id: i-0123456789abcdef0 }", "tools: { id: i-0123456789abcdef0, elastic_ip: \"2001:db8::1\" }"),
			[]string{`c.yaml:13: commands./ec2.instances.tools.elastic_ip: "2001:db8::1" is not an IPv4 address`}, nil},
		{"elastic ip on a selector", edit("tools: { id: i-0123456789abcdef0 }", "tools: { tags: { a: b }, elastic_ip: 107.20.248.29 }"),
			[]string{`c.yaml:13: commands./ec2.instances.tools.elastic_ip: needs an id target`}, nil},
		{"bad action", base + "    actions: [status, strat, status]\n",
			[]string{`c.yaml:14: commands./ec2.actions[1]: unknown action "strat"; did you mean "start"?`, `c.yaml:14: commands./ec2.actions[2]: action "status" is listed twice`}, nil},
		{"empty actions", base + "    actions: []\n",
			[]string{`c.yaml:14: commands./ec2.actions: is empty; remove the key to allow every action`}, nil},
		{"command name", strings.Replace(base, "/ec2:", "ec2:", 1),
			[]string{`c.yaml:9: commands.ec2: a command name starts with /`}, nil},
		{"bad listen", "listen: localhost\n",
			[]string{`c.yaml:1: listen: must be host:port, like 127.0.0.1:8080 or :8080, got "localhost"`}, nil},
		{"bad listen port", "listen: 127.0.0.1:http\n",
			[]string{`c.yaml:1: listen: must be host:port, like 127.0.0.1:8080 or :8080 (the port is a number from 0 to 65535)`}, nil},
		{"bad store URL", "store: mysql://switchboard:hunter2@db/switchboard\n",
			[]string{`c.yaml:1: store: must be sqlite://PATH or a postgres:// URL`}, nil},
		{"bad postgres URL", "store: postgres://u:p%zz@db/switchboard\n",
			[]string{`c.yaml:1: store: is not a valid URL`}, nil},
		{"sqlite without a path", "store: sqlite://\n",
			[]string{`c.yaml:1: store: sqlite:// needs a file path`}, nil},
		{"empty data dir", "data_dir: ''\n",
			[]string{`c.yaml:1: data_dir: is empty`}, nil},
		{"bad log", "log: { level: verbose, format: xml }\n",
			[]string{`c.yaml:1: log.level: must be one of debug, info, warn, error, got "verbose"`, `c.yaml:1: log.format: must be one of text, json, got "xml"`}, nil},
		{"slack without signing secret", "slack:\n  bot_token: xoxb-1\n",
			[]string{`c.yaml:1: slack.signing_secret: is required in the slack section`}, nil},
		{"slack tokens swapped", "slack:\n  signing_secret: s\n  bot_token: ${APP}\n  app_token: ${BOT}\n  api_url: slack.com/api\n",
			[]string{`c.yaml:3: slack.bot_token: must be a bot token starting with xoxb-; this is an app-level token (xapp-): it belongs in app_token`,
				`c.yaml:4: slack.app_token: must be an app-level token starting with xapp-; this is a bot token (xoxb-): it belongs in bot_token`,
				`c.yaml:5: slack.api_url: must be an http:// or https:// URL`},
			map[string]string{"APP": "xapp-1-x", "BOT": "xoxb-1-x"}},
		{"legacy token without a token", "slack:\n  signing_secret: s\n  allow_legacy_token: yes\n",
			[]string{`c.yaml:3: slack.allow_legacy_token: expected true or false, got "yes"`}, nil},
		{"unknown provider", "clouds:\n  main: { provider: gcp }\n",
			[]string{`c.yaml:2: clouds.main.provider: unknown provider "gcp" (providers: sim, aws, alibaba)`}, nil},
		{"missing provider", "clouds:\n  main: { region: x }\n",
			[]string{`c.yaml:2: clouds.main.provider: is required`}, nil},
		{"bad cloud name", "clouds:\n  my/cloud: { provider: sim }\n",
			[]string{`c.yaml:2: clouds.my/cloud: a cloud name is letters`}, nil},
		{"instances on an aws cloud", "clouds:\n  prod:\n    provider: aws\n    instances: []\n    sim: {}\n",
			[]string{`c.yaml:4: clouds.prod.instances: applies only to sim clouds; this cloud is aws`, `c.yaml:5: clouds.prod.sim: applies only to sim clouds`}, nil},
		{"aws keys on a sim cloud", "clouds:\n  main:\n    provider: sim\n    profile: default\n",
			[]string{`c.yaml:4: clouds.main.profile: applies only to aws clouds; this cloud is sim`}, nil},
		{"half a key pair", "clouds:\n  cn:\n    provider: alibaba\n    access_key_id: LTAI\n",
			[]string{`c.yaml:4: clouds.cn.access_key_secret: is required with access_key_id`}, nil},
		{"assume role without an ARN", "clouds:\n  prod:\n    provider: aws\n    assume_role: { external_id: x }\n",
			[]string{`c.yaml:4: clouds.prod.assume_role.role_arn: is required`}, nil},
		{"bad sim instance", edit("name: tools, state: stopped }", "name: tools, state: terminated, public_ip: 1.2.3 }\n      - { id: i-0123456789abcdef0 }\n      - { name: x }"),
			[]string{`c.yaml:5: clouds.main.instances[0].state: must be one of pending, running, stopping, stopped, got "terminated"`, `c.yaml:5: clouds.main.instances[0].public_ip: "1.2.3" is not an IP address`,
				`c.yaml:6: clouds.main.instances[1].id: duplicate instance id "i-0123456789abcdef0" (first at instances[0])`, `c.yaml:7: clouds.main.instances[2].id: is required`}, nil},
		{"bad sim options", "clouds:\n  main:\n    provider: sim\n    sim: { pending_duration: 5, throttle: maybe }\n",
			[]string{`c.yaml:4: clouds.main.sim.pending_duration: expected a duration like 5s or 1m30s, got "5"`, `c.yaml:4: clouds.main.sim.throttle: expected true or false, got "maybe"`}, nil},
		{"merges that multiply", mergeBomb(),
			[]string{`c.yaml:3: clouds.m: merges (<<) are nested too deeply`, `c.yaml:3: clouds.m: merges (<<) copy more than 10000 keys`}, nil},
		{"merge of a string", "x-a: &a hello\nclouds: { m: { <<: *a } }\n",
			[]string{`c.yaml:2: clouds.m: a merge (<<) needs a mapping or a list of mappings, got a string`, `c.yaml:2: clouds.m.provider: is required`}, nil},
		{"duplicate key", "listen: :1\nlisten: :2\n",
			[]string{`c.yaml:2: listen: key is defined twice (first at line 1)`}, nil},
		{"YAML syntax error", "listen: :1\n  store: x\n",
			[]string{`c.yaml:2: invalid YAML: mapping values are not allowed in this context`}, nil},
		{"second document", "listen: :1\n---\nlisten: :2\n",
			[]string{`c.yaml:2: a second YAML document`}, nil},
		{"several problems at once",
			"lisen: :8080\nstore: mysql://x\n" + strings.Replace(edit("group:ops", "group:opz"), "cloud: main", "cloud: ${CLOUD}", 1) + "    actions: [stop, destroy]\n",
			[]string{
				`c.yaml:1: lisen: unknown key "lisen"; did you mean "listen"?`,
				`c.yaml:2: store: must be sqlite://PATH`,
				`c.yaml:12: commands./ec2.cloud: environment variable CLOUD is not set`,
				`c.yaml:13: commands./ec2.allow.users[0]: unknown group "opz" (groups defined: ops)`,
				`c.yaml:16: commands./ec2.actions[1]: unknown action "destroy"`,
			}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Parse("c.yaml", []byte(tc.yaml), env(tc.env), registry)
			var ps config.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse = %v, %v; want Problems", cfg, err)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with its problems")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(ps) {
				t.Errorf("Error() has %d lines for %d problems", len(lines), len(ps))
			}
			for i := range max(len(lines), len(tc.want)) {
				switch {
				case i >= len(tc.want):
					t.Errorf("unexpected problem %d: %s", i, lines[i])
				case i >= len(lines):
					t.Errorf("missing problem %d: %s...", i, tc.want[i])
				case !strings.HasPrefix(lines[i], tc.want[i]):
					t.Errorf("problem %d:\n got %s\nwant %s...", i, lines[i], tc.want[i])
				}
			}
		})
	}
}

// mergeBomb returns a file whose merges, if followed naively, would copy
// 10^10 mappings.
func mergeBomb() string {
	y := "x-a: &a {x: 1}\n"
	prev := "a"
	for i := range 10 {
		name := string(rune('b' + i))
		y += "x-" + name + ": &" + name + " { <<: [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "] }\n"
		prev = name
	}
	return y + "clouds: { m: { <<: *" + prev + ", provider: sim } }\n"
}

func TestProblems_Error(t *testing.T) {
	t.Parallel()
	ps := config.Problems{
		{File: "a.yaml", Line: 3, Key: "listen", Msg: "bad"},
		{File: "a.yaml", Key: "store", Msg: "worse"},
		{File: "a.yaml", Line: 1, Msg: "invalid YAML"},
	}
	want := "a.yaml:3: listen: bad\na.yaml: store: worse\na.yaml:1: invalid YAML"
	if got := ps.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
}

// The secrets below must never be printed, whatever way the config is
// printed or whatever is wrong with it.
var secretEnv = map[string]string{
	"SIGNING": "sig-9b1c7e0f",
	"BOT":     "xoxb-bot-5d2a8c",
	"APP":     "xapp-app-3e7f11",
	"LEGACY":  "legacy-44aa90",
	"ADMIN":   "admin-0c6d2b",
	"OPS2":    "ops2-token-1f5e9a7b3c",
	"PGPASS":  "pg-7f3e19",
	"ALI":     "ali-2b8d55",
}

func assertNoSecret(t *testing.T, what, out string) {
	t.Helper()
	for name, v := range secretEnv {
		if strings.Contains(out, v) {
			t.Errorf("%s shows the secret %s:\n%s", what, name, out)
		}
	}
}

func TestSecrets_notPrinted(t *testing.T) {
	t.Parallel()
	yaml := `
store: postgres://switchboard:${PGPASS}@db.internal:5432/switchboard?sslmode=disable&password=${PGPASS}
slack:
  signing_secret: ${SIGNING}
  bot_token: ${BOT}
  app_token: ${APP}
  verification_token: ${LEGACY}
  allow_legacy_token: true
console: { admin_token: "${ADMIN}", operator: U0OPS1, operators: { U0OPS2: "${OPS2}" } }
clouds:
  cn: { provider: alibaba, access_key_id: LTAI, access_key_secret: "${ALI}", endpoint: "http://127.0.0.1:1" }
`
	cfg, err := config.Parse("c.yaml", []byte(yaml), env(secretEnv), registry)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Slack.BotToken.Value() != secretEnv["BOT"] || !strings.Contains(cfg.Store, secretEnv["PGPASS"]) {
		t.Fatalf("the secrets were not read")
	}

	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("loaded", "config", cfg, "slack", cfg.Slack, "cloud", cfg.Clouds[0], "secret", cfg.Slack.BotToken)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("loaded", "config", cfg, "slack", cfg.Slack, "cloud", cfg.Clouds[0], "secret", cfg.Slack.BotToken)
	marshaled, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	marshaledValue, _ := json.Marshal(*cfg)
	for what, out := range map[string]string{
		"%v":            fmt.Sprintf("%v", cfg),
		"%+v":           fmt.Sprintf("%+v", cfg),
		"%#v":           fmt.Sprintf("%#v", cfg),
		"%s":            fmt.Sprintf("%s", cfg),
		"%v of a value": fmt.Sprintf("%v", *cfg),
		"%v of slack":   fmt.Sprintf("%v %+v %#v", cfg.Slack, cfg.Slack, cfg.Slack),
		"%d %x %q":      fmt.Sprintf("%d %x %q", cfg.Slack.BotToken, cfg.Slack.BotToken, cfg.Slack.BotToken),
		"String":        cfg.String(),
		"Redacted":      fmt.Sprintf("%#v", *cfg.Redacted()) + cfg.Redacted().Store + string(cfg.Redacted().Slack.BotToken),
		"json":          string(marshaled) + string(marshaledValue),
		"slog text":     text.String(),
		"slog json":     js.String(),
	} {
		assertNoSecret(t, what, out)
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s does not say [redacted]:\n%s", what, out)
		}
	}
	if got, want := cfg.Redacted().Store, "postgres://switchboard:[redacted]@db.internal:5432/switchboard?password=[redacted]&sslmode=disable"; got != want {
		t.Errorf("Redacted().Store = %s, want %s", got, want)
	}
	if cfg.Redacted().Slack.BotToken != "[redacted]" || cfg.Slack.BotToken.Value() != secretEnv["BOT"] {
		t.Errorf("Redacted changed the original or kept the token")
	}
}

func TestSecrets_notInProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte(secretEnv["ADMIN"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := `
listen: ${file:` + file + `}
store: mysql://u:${PGPASS}@h/db
log: { level: "${file:` + file + `}" }
slack:
  signing_secret: ${SIGNING}
  bot_token: ${APP}
  app_token: ${BOT}
  verification_token: ${LEGACY}
  api_url: ${SIGNING}
  allow_legacy_token: ${LEGACY}
clouds:
  main:
    provider: sim
    instances: [{ id: "${file:` + file + `}", public_ip: "${file:` + file + `}" }]
commands:
  /x:
    allow: { users: ["${file:` + file + `}"], channels: ["#${file:` + file + `}"] }
    instances: { a: { id: "${file:` + file + `}", elastic_ip: "${file:` + file + `}" } }
    actions: ["${file:` + file + `}"]
`
	_, err := config.Parse("c.yaml", []byte(yaml), env(secretEnv), registry)
	var ps config.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse = %v, want Problems", err)
	}
	if len(ps) < 10 {
		t.Errorf("want a problem for each bad value, got:\n%v", err)
	}
	assertNoSecret(t, "Problems", err.Error())
	if !strings.Contains(err.Error(), "not shown") {
		t.Errorf("problems do not say the value is hidden:\n%v", err)
	}
}

func TestSecret(t *testing.T) {
	t.Parallel()
	s := config.Secret("hunter2")
	if s.String() != "[redacted]" || fmt.Sprint(s) != "[redacted]" || s.Value() != "hunter2" {
		t.Errorf("String, Sprint, Value = %q, %q, %q", s.String(), fmt.Sprint(s), s.Value())
	}
	if b, _ := json.Marshal(s); string(b) != `"[redacted]"` {
		t.Errorf("json = %s", b)
	}
	if v := s.LogValue(); v.String() != "[redacted]" {
		t.Errorf("LogValue = %s", v)
	}
	if config.Secret("").String() != "" {
		t.Errorf("an empty secret should print as empty, to show it is not set")
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	cfg := config.Default("", registry)
	if cfg.Listen != "127.0.0.1:8080" || cfg.Store != "sqlite://./data/switchboard.db" || cfg.Slack.Enabled() {
		t.Errorf("listen, store, slack = %q, %q, %v", cfg.Listen, cfg.Store, cfg.Slack.Enabled())
	}
	if cfg.Names["U0OPS1"] != "ana" || cfg.Names["C0OPS"] != "ops" {
		t.Errorf("the demo names %v; want U0OPS1 ana and C0OPS ops", cfg.Names)
	}
	if got := config.Default("/tmp/sb/", registry).Store; got != "sqlite:///tmp/sb/switchboard.db" {
		t.Errorf("Default(/tmp/sb/).Store = %q", got)
	}

	main, ok := cfg.Cloud("main")
	simOpts, _ := main.Options["sim"].(map[string]any)
	if !ok || main.Provider != "sim" || simOpts["pending_duration"] != "3s" || simOpts["stopping_duration"] != "3s" {
		t.Fatalf("main = %+v, %v", main, ok)
	}
	var opts struct {
		Instances []switchboard.Instance `json:"instances"`
	}
	raw, err := main.OptionsJSON()
	if err != nil || json.Unmarshal(raw, &opts) != nil {
		t.Fatalf("options of main: %s, %v", raw, err)
	}
	fleet := map[string]switchboard.Instance{}
	for _, in := range opts.Instances {
		if in.State == "" {
			in.State = switchboard.StateRunning // the simulator's default
		}
		fleet[in.Name] = in
	}
	for _, want := range []switchboard.Instance{
		{ID: "i-0123456789abcdef0", Name: "tools", State: switchboard.StateStopped, Tags: map[string]string{"env": "dev"}},
		{ID: "i-0fedcba9876543210", Name: "web-1", State: switchboard.StateRunning, Tags: map[string]string{"env": "prod", "role": "web"}},
		{Name: "web-2", State: switchboard.StateRunning, Tags: map[string]string{"env": "prod", "role": "web"}},
		{Name: "build-1", State: switchboard.StateStopped, Tags: map[string]string{"env": "dev"}},
		{Name: "db-1", State: switchboard.StateRunning, Tags: map[string]string{"env": "prod"}},
	} {
		got, ok := fleet[want.Name]
		if !ok {
			t.Errorf("no instance %s in the default fleet", want.Name)
			continue
		}
		if want.ID != "" && got.ID != want.ID || got.State != want.State {
			t.Errorf("%s = %+v, want %+v", want.Name, got, want)
		}
		for k, v := range want.Tags {
			if got.Tags[k] != v {
				t.Errorf("%s: tag %s = %q, want %q", want.Name, k, got.Tags[k], v)
			}
		}
	}

	ec2, ok := cfg.Command("/ec2")
	want := switchboard.CommandSpec{
		Name: "/ec2", Cloud: "main",
		Access: switchboard.Access{Users: []string{"U0OPS1", "U0OPS2"}, Channels: []string{"C0OPS", "C0DEV"}},
		Instances: []switchboard.TargetSpec{
			{Alias: "tools", ID: "i-0123456789abcdef0", ElasticIP: "107.20.248.29"},
			{Alias: "web", Tags: map[string]string{"role": "web"}},
			{Alias: "dev", Tags: map[string]string{"env": "dev"}},
		},
		Actions: switchboard.AllActions,
	}
	if !ok || !reflect.DeepEqual(ec2, want) {
		t.Errorf("/ec2 = %#v\nwant %#v", ec2, want)
	}

	// The embedded YAML is exported so `switchboard init` can write it out;
	// it must parse on its own too.
	if _, err := config.Parse("default.yaml", config.DefaultYAML, nil, registry); err != nil {
		t.Errorf("DefaultYAML: %v", err)
	}
}

// Mutating one parse's result must not change another's, nor AllActions.
func TestParse_resultsAreIndependent(t *testing.T) {
	t.Parallel()
	a := config.Default("", registry)
	a.Commands[0].Actions[0] = "mutated"
	if switchboard.AllActions[0] != "status" {
		t.Fatalf("a config shares its actions with switchboard.AllActions")
	}
	if b := config.Default("", registry); b.Commands[0].Actions[0] != "status" {
		t.Errorf("a config shares its actions with another")
	}
}
