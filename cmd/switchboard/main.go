// Command switchboard runs Switchboard: one process that takes slash
// commands from Slack (or its own console), turns them into durable runs that
// act on cloud instances, and answers in the channel.
//
// This is the only package that knows every other one; it reads the config
// and wires the parts together.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboardhq/switchboard/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		var problems config.Problems
		if !errors.As(err, &problems) && !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "switchboard:", err)
		}
		os.Exit(1)
	}
}

// errUsage means the usage was already printed.
var errUsage = errors.New("usage")

const usage = `Switchboard runs your cloud fleet from chat.

Usage:
  switchboard serve [--config FILE] [--addr HOST:PORT]   run the server (no --config: built-in demo on the simulated cloud)
  switchboard check --config FILE                        validate a config file
  switchboard audit [--config FILE] [--since 1h] [--actor U] [--kind K] [--outcome O] [--run ID] [--json]
                                                          print the audit log, newest first
  switchboard slack-manifest (--url https://HOST | --socket-mode) [--config FILE]
                                                          print a Slack app manifest for this config (needs no secret)
  switchboard aws-policy --config FILE                   print the least-privilege IAM policy for the config's aws clouds
  switchboard console-url [--config FILE]                print the console's address with its login token, as serve's banner does
  switchboard version                                    print the version
`

// run is main without the process: tests call it too.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, stderr)
	case "check":
		return check(args[1:], getenv, stdout, stderr)
	case "audit":
		return audit(ctx, args[1:], getenv, stdout, stderr)
	case "slack-manifest":
		return slackManifest(args[1:], getenv, stdout, stderr)
	case "aws-policy":
		return awsPolicy(args[1:], getenv, stdout, stderr)
	case "console-url":
		return consoleURL(args[1:], getenv, stdout, stderr)
	case "version", "--version", "-v":
		return version(stdout)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "switchboard: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}
