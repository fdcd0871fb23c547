package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/aws"
	"github.com/switchboardhq/switchboard/config"
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
	asJSON := fs.Bool("json", false, "print JSON lines")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, _, err := loadConfig(*path, *dataDir, getenv, stderr)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.Store, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	evs, err := st.ListAudit(ctx, time.Now().Add(-*since), *limit)
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
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tACTOR\tCHANNEL\tSUBJECT\tOUTCOME\tDETAIL\tRUN")
	for _, ev := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.Time.Local().Format("2006-01-02 15:04:05"), ev.Kind, dash(ev.Actor), dash(ev.Channel),
			dash(ev.Subject), dash(ev.Outcome), dash(strings.ReplaceAll(ev.Detail, "\n", " ")), dash(ev.RunID))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func slackManifest(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("slack-manifest", stderr)
	url := fs.String("url", "", "the public https:// base URL Slack will call (required)")
	path := fs.String("config", "", "config file whose commands to list (default: the built-in one)")
	socket := fs.Bool("socket-mode", false, "use Socket Mode (no public URL needed for requests)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *url == "" {
		fmt.Fprintln(stderr, "switchboard slack-manifest: --url https://HOST is required")
		return errUsage
	}
	cfg, _, err := loadConfig(*path, "", getenv, stderr)
	if err != nil {
		return err
	}
	b, err := slack.Manifest(*url, *socket, cfg.Commands)
	if err != nil {
		return err
	}
	_, err = stdout.Write(append(b, '\n'))
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
