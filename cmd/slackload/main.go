// Command slackload measures how fast a Switchboard server acknowledges Slack
// slash commands and whether it answers each one exactly once.
//
// It sends correctly signed slash commands to -url, each with a unique
// trigger_id and a unique response_url pointing at a receiver it runs itself
// on 127.0.0.1, then reports ack latency (the HTTP round trip Slack waits on,
// 3 s at most), throughput, errors, end-to-end latency (command sent to first
// answer at its response_url) and how many commands were answered once, never,
// or more than once. It exits non-zero when any command errored, was never
// answered or was answered twice, so scripts can assert on it.
//
//	slackload -url http://127.0.0.1:8080/slack/commands -secret S -n 1000 -concurrency 8
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errFailed):
		fmt.Fprintf(os.Stderr, "slackload: %v\n", err)
		os.Exit(1)
	case errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintf(os.Stderr, "slackload: %v\n", err)
		os.Exit(2)
	}
}

// errFailed marks a run that went through but found a problem worth failing a
// script on: errors, commands never answered or answered more than once.
var errFailed = errors.New("load test failed")

// run is the whole program; tests call it as main does.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	rep, err := loadTest(ctx, cfg)
	if err != nil {
		return err
	}

	var out strings.Builder
	if cfg.JSON {
		err = rep.writeJSON(&out)
	} else {
		err = rep.writeText(&out)
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if _, err := io.WriteString(stdout, out.String()); err != nil {
		return err
	}
	if cfg.Out != "" {
		if err := os.WriteFile(cfg.Out, []byte(out.String()), 0o644); err != nil {
			return fmt.Errorf("write report to -out: %w", err)
		}
	}
	if problems := rep.problems(); len(problems) > 0 {
		return fmt.Errorf("%w: %s", errFailed, strings.Join(problems, "; "))
	}
	return nil
}

// config is what the flags ask for.
type config struct {
	URL           string
	Secret        string
	Command       string
	Text          string
	User          string
	Channel       string
	Channels      int
	Rate          float64
	Concurrency   int
	N             int
	Duration      time.Duration
	Timeout       time.Duration
	AnswerTimeout time.Duration
	Settle        time.Duration
	JSON          bool
	Out           string
	AllowRemote   bool
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("slackload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: slackload -url URL [-secret S] (-n N | -duration D) [flags]\n\n"+
			"Sends signed Slack slash commands to URL and reports ack latency, end-to-end latency\n"+
			"and exactly-once answers. Exits 1 when any command errored, was never answered\n"+
			"or was answered more than once; 2 on bad flags.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.URL, "url", "", "the server's slash command `URL`, e.g. http://127.0.0.1:8080/slack/commands (loopback only unless -allow-remote)")
	// Not the flag's default: -h would print the secret.
	fs.StringVar(&cfg.Secret, "secret", "", "Slack signing `secret` the server verifies with (default $SLACK_SIGNING_SECRET)")
	fs.StringVar(&cfg.Command, "command", "/ec2", "slash `command`")
	fs.StringVar(&cfg.Text, "text", "status", "command `text`")
	fs.StringVar(&cfg.User, "user", "U0SLACKLOAD", "Slack user `id` the commands come from (the server must allow it)")
	fs.StringVar(&cfg.Channel, "channel", "C0SLACKLOAD", "Slack channel `id` the commands come from")
	fs.IntVar(&cfg.Channels, "channels", 1, "spread the commands over this many `channels` (-channel followed by 0..N-1), so that a server's per-channel posting limit does not dominate end-to-end latency")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: send this many `requests/s` whatever the answers; 0 = closed loop")
	fs.IntVar(&cfg.Concurrency, "concurrency", 8, "closed loop: `workers`, each sending its next command once the last is acked")
	fs.IntVar(&cfg.N, "n", 0, "total `requests` to send (with -duration, whichever ends first)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop sending after this `duration` (with -n, whichever ends first)")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "give up on one ack after this `duration` (Slack itself waits 3s)")
	fs.DurationVar(&cfg.AnswerTimeout, "answer-timeout", 30*time.Second, "after the last ack, wait at most this `duration` for the answers")
	fs.DurationVar(&cfg.Settle, "settle", time.Second, "once every command has its answer, keep listening this `duration` for duplicates")
	fs.BoolVar(&cfg.JSON, "json", false, "print the report as JSON")
	fs.StringVar(&cfg.Out, "out", "", "also write the report to `file`")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a -url whose host is not loopback (answers still go to 127.0.0.1)")
	if err := fs.Parse(args[1:]); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q: every setting is a flag, see -h", fs.Args())
	}
	if cfg.Secret == "" {
		cfg.Secret = getenv("SLACK_SIGNING_SECRET")
	}
	return cfg, cfg.validate()
}

// validate says which flag is wrong and how to fix it.
func (c config) validate() error {
	if c.URL == "" {
		return errors.New("-url is required: the server's slash command endpoint, e.g. http://127.0.0.1:8080/slack/commands")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url %q is not an http(s) URL", c.URL)
	}
	if !c.AllowRemote && !isLoopback(u.Hostname()) {
		return fmt.Errorf("-url %q: host %s is not a loopback address; slackload only loads the local machine unless you pass -allow-remote", c.URL, u.Hostname())
	}
	if c.Secret == "" {
		return errors.New("no signing secret: pass -secret or set SLACK_SIGNING_SECRET to the server's slack.signing_secret")
	}
	if c.N < 0 || c.Duration < 0 {
		return errors.New("-n and -duration must not be negative")
	}
	if c.N == 0 && c.Duration == 0 {
		return errors.New("set -n or -duration (or both) so the run has an end")
	}
	if c.Rate < 0 {
		return errors.New("-rate must not be negative (0 means closed loop)")
	}
	if c.Rate == 0 && c.Concurrency < 1 {
		return errors.New("-concurrency must be at least 1")
	}
	if c.Channels < 1 {
		return errors.New("-channels must be at least 1")
	}
	if c.Timeout <= 0 || c.AnswerTimeout < 0 || c.Settle < 0 {
		return errors.New("-timeout must be positive, -answer-timeout and -settle not negative")
	}
	if c.Command == "" || !strings.HasPrefix(c.Command, "/") {
		return fmt.Errorf("-command %q must start with /", c.Command)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
