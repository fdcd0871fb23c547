package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/aws"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/engine"
	"github.com/switchboardhq/switchboard/slack"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/web"
)

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("switchboard "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses and turns a usage error into errUsage (already printed).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errUsage
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

// consoleURL prints the console's address with its login token, as the
// start banner does, for whoever lost the banner: it reads the token from
// the data directory, so it works only for a user who may read that.
func consoleURL(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("console-url", stderr)
	path := fs.String("config", "", "config file (default: the built-in one, whose data is in ./data)")
	dataDir := fs.String("data-dir", "", "data directory of the built-in config")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, _, err := loadConfig(*path, *dataDir, getenv, stderr)
	if err != nil {
		return err
	}
	base := "http://" + cfg.Listen + "/"
	if cfg.Console.AdminToken != "" {
		fmt.Fprintf(stdout, "%s (log in with console.admin_token)\n", base)
		return nil
	}
	token, err := consoleLoginToken(cfg.DataDir, false)
	if err != nil {
		return err
	}
	query := web.LoginQuery(cfg.Listen, "", token)
	if query == "" {
		return fmt.Errorf("the console is off: %s is not a loopback address and console.admin_token is not set", cfg.Listen)
	}
	fmt.Fprintln(stdout, base+query)
	return nil
}

// loadConfig reads --config, or the built-in default when path is empty.
// What the registered steps need from the config (branch sources, clients)
// is built into the returned wiring by its build.
func loadConfig(path, dataDir string, getenv func(string) string, stderr io.Writer) (*config.Config, *wiring, error) {
	reg, rt := newRegistry()
	if path == "" {
		return config.Default(dataDir, reg), rt, nil
	}
	if dataDir != "" {
		return nil, nil, errors.New("--data-dir only applies to the built-in config; with --config, set data_dir: (and store:) in the file")
	}
	cfg, err := config.Load(path, getenv, reg)
	if err != nil {
		var problems config.Problems
		if errors.As(err, &problems) {
			fmt.Fprintln(stderr, problems.Error())
		}
		return nil, nil, err
	}
	return cfg, rt, nil
}

func check(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	path := fs.String("config", "", "the config file to check (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		fmt.Fprintln(stderr, "switchboard check: --config FILE is required")
		return errUsage
	}
	cfg, rt, err := loadConfig(*path, "", getenv, stderr)
	if err != nil {
		return err
	}
	if err := rt.build(cfg, false); err != nil {
		return err
	}
	if problems := checkExpressions(cfg); len(problems) > 0 {
		fmt.Fprintln(stderr, problems.Error())
		return problems
	}
	if _, err := buildSchedules(cfg); err != nil {
		return err
	}
	if _, err := buildProviders(context.Background(), cfg, getenv, false, nil); err != nil {
		return err
	}
	if _, problems := buildSources(context.Background(), cfg, noEvents{}, slog.New(slog.DiscardHandler)); len(problems) > 0 {
		fmt.Fprintln(stderr, problems.Error())
		return problems
	}
	fmt.Fprintf(stdout, "%s is valid: %d cloud(s), %d command(s), %d deploy(s), %d workflow(s), store %s\n", *path, len(cfg.Clouds), len(cfg.Commands), len(cfg.Deploys), len(cfg.Workflows), cfg.Redacted().Store)
	return nil
}

// noEvents stands in for the event handler where sources are only checked.
type noEvents struct{}

func (noEvents) HandleEvent(context.Context, switchboard.Event) ([]string, error) { return nil, nil }

func version(stdout io.Writer) error {
	v := switchboard.Version
	if info, ok := debug.ReadBuildInfo(); ok && v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	fmt.Fprintf(stdout, "switchboard %s (%s, %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func audit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("audit", stderr)
	path := fs.String("config", "", "config file (default: the built-in one, whose store is ./data/switchboard.db)")
	dataDir := fs.String("data-dir", "", "data directory of the built-in config")
	since := fs.Duration("since", time.Hour, "how far back to go")
	limit := fs.Int("limit", 1000, "at most this many lines (the newest)")
	asJSON := fs.Bool("json", false, "print JSON lines, every field whole")
	var q switchboard.AuditQuery
	fs.StringVar(&q.Actor, "actor", "", "only lines by this user id")
	fs.StringVar(&q.Kind, "kind", "", "only this kind: request, decision, action, message or run")
	fs.StringVar(&q.Outcome, "outcome", "", "only this outcome, like refused or failed")
	fs.StringVar(&q.RunID, "run", "", "only this run (its id, or the beginning of it)")
	width := fs.Int("width", -1, "fit lines to this many columns, 0 for no limit (default: the terminal's width, $COLUMNS, or 120)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, _, err := loadConfig(*path, *dataDir, getenv, stderr)
	if err != nil {
		return err
	}
	// Reading the log must never leave an empty database behind where
	// there was none (a run from the wrong directory).
	if driver, file := cfg.StoreDSN(); driver == "sqlite" {
		file, _, _ = strings.Cut(file, "?")
		if _, err := os.Stat(file); err != nil {
			abs, _ := filepath.Abs(file)
			how := "pass --config FILE (its store:) or --data-dir DIR (for the built-in config)"
			if *path != "" {
				how = "check store: in " + *path
			}
			fmt.Fprintf(stderr, "switchboard audit: there is no database at %s (store %s of %s): run it where serve runs, or %s\n", abs, cfg.Redacted().Store, configName(*path), how)
			return errUsage
		}
	}
	st, err := store.Open(ctx, cfg.Store, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	q.Since, q.Limit = time.Now().Add(-*since), *limit
	evs, err := st.ListAudit(ctx, q)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, ev := range evs {
			if err := enc.Encode(ev); err != nil {
				return err
			}
		}
		return nil
	}
	if len(evs) == 0 {
		fmt.Fprintf(stderr, "No audit lines in the last %s match.\n", strings.TrimSuffix(strings.TrimSuffix(since.String(), "0s"), "0m"))
		return nil
	}
	if *width < 0 {
		*width = terminalWidth(stdout, getenv)
	}
	return writeAuditTable(stdout, evs, *width, time.Local)
}

func configName(path string) string {
	if path == "" {
		return "the built-in config"
	}
	return path
}

// terminalWidth is stdout's width when it is a terminal, else $COLUMNS,
// else 120.
func terminalWidth(stdout io.Writer, getenv func(string) string) int {
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			return w
		}
	}
	if n, err := strconv.Atoi(getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 120
}

// auditColumns are the audit table's columns before DETAIL, with the most
// each may take before it is cut with "…". RUN shows the first 12
// characters of a run id, as the console does; --run takes them.
var auditColumns = []struct {
	title  string
	max    int
	prefix bool // cut without "…", so what shows can be pasted
	value  func(switchboard.AuditEvent, *time.Location) string
}{
	{"TIME", 19, false, func(ev switchboard.AuditEvent, loc *time.Location) string {
		return ev.Time.In(loc).Format("2006-01-02 15:04:05")
	}},
	{"KIND", 8, false, func(ev switchboard.AuditEvent, _ *time.Location) string { return ev.Kind }},
	{"ACTOR", 14, false, func(ev switchboard.AuditEvent, _ *time.Location) string { return ev.Actor }},
	{"CHANNEL", 12, false, func(ev switchboard.AuditEvent, _ *time.Location) string { return ev.Channel }},
	{"SUBJECT", 30, false, func(ev switchboard.AuditEvent, _ *time.Location) string { return ev.Subject }},
	{"OUTCOME", 12, false, func(ev switchboard.AuditEvent, _ *time.Location) string { return ev.Outcome }},
	{"RUN", 12, true, func(ev switchboard.AuditEvent, _ *time.Location) string { return ev.RunID }},
}

// minDetail is the narrowest DETAIL column worth having beside the others;
// narrower, the detail goes on lines of its own under its row.
const minDetail = 24

// writeAuditTable prints the audit lines as a table that fits width
// columns: short columns are cut with "…" (SUBJECT first, when the
// terminal is narrow), DETAIL wraps between words, beside its row or,
// when there is no room beside it, under it. Width 0 puts each line whole
// on one row.
func writeAuditTable(w io.Writer, evs []switchboard.AuditEvent, width int, loc *time.Location) error {
	const gap = 2
	rows := make([][]string, len(evs))
	widths := make([]int, len(auditColumns))
	for i, c := range auditColumns {
		widths[i] = len(c.title)
	}
	for r, ev := range evs {
		for i, c := range auditColumns {
			v := strings.Join(strings.Fields(c.value(ev, loc)), " ")
			if v == "" {
				v = "-"
			}
			rows[r] = append(rows[r], v)
			widths[i] = max(widths[i], utf8.RuneCountInString(v))
		}
	}
	if width > 0 {
		total := -gap // the row's width without DETAIL
		for i, c := range auditColumns {
			widths[i] = min(widths[i], c.max)
			total += widths[i] + gap
		}
		// Too narrow for the columns themselves: give up room, subject
		// first, then the year, down to what still says something.
		for _, shrink := range []struct {
			title string
			least int
		}{{"SUBJECT", 16}, {"TIME", 14}, {"SUBJECT", 12}, {"ACTOR", 8}, {"CHANNEL", 8}} {
			for i, c := range auditColumns {
				if c.title != shrink.title || total <= width || widths[i] <= shrink.least {
					continue
				}
				if c.title == "TIME" { // 2026-12-02 15:04:05 -> 12-02 15:04:05
					for r := range rows {
						rows[r][i] = strings.TrimPrefix(rows[r][i], rows[r][i][:5])
					}
				}
				d := min(widths[i]-shrink.least, total-width)
				if c.title == "TIME" {
					d = widths[i] - shrink.least
				}
				widths[i] -= d
				total -= d
			}
		}
		for r := range rows {
			for i, c := range auditColumns {
				if c.prefix {
					rows[r][i] = string([]rune(rows[r][i])[:min(widths[i], utf8.RuneCountInString(rows[r][i]))])
				} else {
					rows[r][i] = cut(rows[r][i], widths[i])
				}
			}
		}
	}
	indent := 0
	for _, n := range widths {
		indent += n + gap
	}
	detailWidth := width - indent
	below := width > 0 && detailWidth < minDetail // detail on lines of its own
	if below {
		detailWidth = max(width-4, 8)
	}
	bw := bufio.NewWriter(w)
	line := func(cells []string, detail []string) {
		var b strings.Builder
		for i, v := range cells {
			b.WriteString(v)
			b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(v)+gap))
		}
		if !below && len(detail) > 0 {
			b.WriteString(detail[0])
			detail = detail[1:]
		}
		row := strings.TrimRight(b.String(), " ")
		if width > 0 {
			row = cut(row, width) // only when even the shrunk columns do not fit
		}
		bw.WriteString(row + "\n")
		pad := strings.Repeat(" ", indent)
		if below {
			pad = "    "
		}
		for _, d := range detail {
			bw.WriteString(pad + d + "\n")
		}
	}
	titles := make([]string, len(auditColumns))
	for i, c := range auditColumns {
		titles[i] = c.title
	}
	if below {
		line(titles, nil)
	} else {
		line(titles, []string{"DETAIL"})
	}
	for r, ev := range evs {
		detail := strings.Join(strings.Fields(ev.Detail), " ")
		switch {
		case detail == "":
			line(rows[r], nil)
		case width <= 0:
			line(rows[r], []string{detail})
		default:
			line(rows[r], wrapWords(detail, detailWidth))
		}
	}
	return bw.Flush()
}

// cut shortens s to at most n characters, ending in "…" when it was longer.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n < 1 {
		return ""
	}
	r := []rune(s)
	return strings.TrimRight(string(r[:n-1]), " ") + "…"
}

// wrapWords breaks s into lines of at most n characters, between words
// where it can; a word longer than a line (an id, a URL) is broken.
func wrapWords(s string, n int) []string {
	var lines []string
	var cur []rune
	for _, word := range strings.Fields(s) {
		wr := []rune(word)
		if len(cur) > 0 && len(cur)+1+len(wr) > n {
			lines = append(lines, string(cur))
			cur = nil
		}
		if len(cur) > 0 {
			cur = append(cur, ' ')
		}
		cur = append(cur, wr...)
		for len(cur) > n {
			lines = append(lines, string(cur[:n]))
			cur = cur[n:]
		}
	}
	if len(cur) > 0 {
		lines = append(lines, string(cur))
	}
	return lines
}

// slackManifest prints the manifest to create the Slack app from. It runs
// before the app exists, so it needs none of the config's secrets.
func slackManifest(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("slack-manifest", stderr)
	url := fs.String("url", "", "the public https:// base URL Slack will call (required unless --socket-mode)")
	path := fs.String("config", "", "config file whose commands to list (default: the built-in one)")
	socket := fs.Bool("socket-mode", false, "use Socket Mode (no public URL needed for requests)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *url == "" && !*socket {
		fmt.Fprintln(stderr, "switchboard slack-manifest: --url https://HOST is required (or --socket-mode, which needs no public URL)")
		return errUsage
	}
	var cfg *config.Config
	if *path == "" {
		cfg, _, _ = loadConfig("", "", getenv, stderr)
	} else {
		reg, _ := newRegistry()
		var err error
		if cfg, err = config.LoadWithoutSecrets(*path, getenv, reg); err != nil {
			var problems config.Problems
			if errors.As(err, &problems) {
				fmt.Fprintln(stderr, problems.Error())
			}
			return err
		}
	}
	commands := &engine.Commands{Specs: cfg.Commands, Workflows: cfg.Workflows, Deploys: cfg.DeploySpecs()}
	b, err := slack.Manifest(*url, *socket, commands.Help())
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

// awsPolicy prints the least-privilege IAM policy for what the config's
// commands may do on its aws clouds.
func awsPolicy(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("aws-policy", stderr)
	path := fs.String("config", "", "the config file (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		fmt.Fprintln(stderr, "switchboard aws-policy: --config FILE is required")
		return errUsage
	}
	cfg, _, err := loadConfig(*path, "", getenv, stderr)
	if err != nil {
		return err
	}
	in := aws.PolicyInput{}
	seen := map[string]bool{}
	for _, cloud := range cfg.Clouds {
		if cloud.Provider != aws.Type.Name {
			continue
		}
		if region := cloud.Option("region"); region != "" && !slices.Contains(in.Regions, region) {
			in.Regions = append(in.Regions, region)
		}
		for _, cmd := range cfg.Commands {
			if cmd.Cloud != cloud.Name {
				continue
			}
			for _, a := range cmd.Actions {
				if !seen[a] {
					seen[a] = true
					in.Actions = append(in.Actions, a)
				}
			}
			for _, t := range cmd.Instances {
				switch {
				case t.ID != "":
					in.InstanceIDs = append(in.InstanceIDs, t.ID)
				case len(t.Tags) > 0:
					in.TagSelectors = append(in.TagSelectors, t.Tags)
				}
				in.ElasticIPs = in.ElasticIPs || t.ElasticIP != ""
			}
		}
	}
	for _, d := range cfg.Deploys {
		cloud, ok := cfg.Cloud(d.Cloud)
		if !ok || cloud.Provider != aws.Type.Name {
			continue
		}
		if region := cloud.Option("region"); region != "" && !slices.Contains(in.Regions, region) {
			in.Regions = append(in.Regions, region)
		}
		in.Deploys = append(in.Deploys, aws.DeployPolicy{Command: d.Command, Image: d.Launch.Image})
	}
	if cfg.DNS != nil {
		in.DNSZones = cfg.DNS.Zones
	}
	if len(in.Regions) == 0 && len(in.DNSZones) == 0 {
		fmt.Fprintf(stderr, "switchboard aws-policy: %s has no aws cloud, so it needs no IAM policy\n", *path)
		return errUsage
	}
	b, err := aws.Policy(in)
	if err != nil {
		return err
	}
	_, err = stdout.Write(append(b, '\n'))
	return err
}
