package main

import (
	"context"
	"log/slog"
	"regexp"
	"time"

	"github.com/switchboardhq/switchboard"
)

// The operator's log: every command received, every run started,
// finished, failed or parked, every message delivered or not, each with
// its run id. It is kept here, around the parts that do the work, so that
// none of them needs to know about logging. Debug adds each step.
//
// Nothing secret reaches it: requests are logged by command, user and
// channel (never the response_url), and URLs inside errors (a response_url
// or an incoming webhook carries its credential in its path) are cut to
// their host.

// logCommands logs each command a chat adapter hands over, and what became
// of it.
func logCommands(next switchboard.CommandHandler, logger *slog.Logger) switchboard.CommandHandler {
	return commandLog{next: next, logger: logger}
}

type commandLog struct {
	next   switchboard.CommandHandler
	logger *slog.Logger
}

func (c commandLog) HandleCommand(ctx context.Context, req switchboard.Request) (switchboard.Ack, error) {
	start := time.Now()
	ack, err := c.next.HandleCommand(ctx, req)
	attrs := []any{"command", req.Command, "text", cut(req.Text, 200), "user", req.UserID, "channel", req.ChannelID, "source", req.Source,
		"took", time.Since(start).Round(time.Microsecond)}
	switch code := switchboard.ErrorCode(err); {
	case err == nil:
		c.logger.InfoContext(ctx, "command received", append(attrs, "run_id", ack.RunID)...)
	case code == switchboard.EINTERNAL || code == switchboard.EUNAVAILABLE:
		c.logger.ErrorContext(ctx, "command failed", append(attrs, "err", redactURLs(err.Error()))...)
	default:
		c.logger.InfoContext(ctx, "command refused", append(attrs, "code", code, "reason", redactURLs(switchboard.ErrorMessage(err)))...)
	}
	return ack, err
}

// logRuns logs what each advance of a run came to.
func logRuns(next switchboard.Advancer, logger *slog.Logger) switchboard.Advancer {
	return runLog{next: next, logger: logger}
}

type runLog struct {
	next   switchboard.Advancer
	logger *slog.Logger
}

func (a runLog) Advance(ctx context.Context, run *switchboard.Run, saver switchboard.RunSaver) (switchboard.Outcome, error) {
	before, cursor := run.State, run.Cursor
	attrs := []any{"run_id", run.ID, "workflow", run.Workflow}
	if before == switchboard.RunQueued {
		a.logger.InfoContext(ctx, "run started", append(attrs, "source", run.Request.Source, "user", run.Request.UserID, "channel", run.Request.ChannelID)...)
	}
	if a.logger.Enabled(ctx, slog.LevelDebug) && cursor < len(run.Plan) {
		a.logger.DebugContext(ctx, "run step", append(attrs, "step", cursor+1, "kind", run.Plan[cursor].Kind, "id", run.Plan[cursor].ID)...)
	}
	out, err := a.next.Advance(ctx, run, saver)
	if a.logger.Enabled(ctx, slog.LevelDebug) {
		for _, ev := range out.Audit {
			a.logger.DebugContext(ctx, "run audit", append(attrs, "kind", ev.Kind, "subject", ev.Subject, "outcome", ev.Outcome, "detail", redactURLs(ev.Detail))...)
		}
		a.logger.DebugContext(ctx, "run advanced", append(attrs, "state", run.State, "from_step", cursor+1, "to_step", run.Cursor+1,
			"messages", len(out.Messages), "wait", out.Wait)...)
	}
	switch {
	case err != nil:
		a.logger.WarnContext(ctx, "run step failed, retrying", append(attrs, "step", cursor+1, "err", redactURLs(err.Error()))...)
	case run.State == switchboard.RunSucceeded:
		a.logger.InfoContext(ctx, "run finished", append(attrs, "result", cut(run.Result, 300), "took", time.Since(run.CreatedAt).Round(time.Millisecond))...)
	case run.State == switchboard.RunFailed:
		a.logger.WarnContext(ctx, "run failed", append(attrs, "error", redactURLs(cut(run.Error, 500)), "step", run.Cursor+1)...)
	case run.State == switchboard.RunWaiting && (before != switchboard.RunWaiting || run.Cursor != cursor):
		// Parked at a new step; the polls while it waits there are debug.
		a.logger.InfoContext(ctx, "run parked", append(attrs, "step", run.Cursor+1, "kind", stepKind(run), "wait", out.Wait)...)
	case run.State == switchboard.RunWaiting:
		a.logger.DebugContext(ctx, "run still waiting", append(attrs, "step", run.Cursor+1, "wait", out.Wait)...)
	}
	return out, err
}

func stepKind(run *switchboard.Run) string {
	if run.Cursor < len(run.Plan) {
		return run.Plan[run.Cursor].Kind
	}
	return ""
}

// logMessages logs each delivery of a run's message.
func logMessages(next switchboard.Messenger, logger *slog.Logger) switchboard.Messenger {
	return messageLog{next: next, logger: logger}
}

type messageLog struct {
	next   switchboard.Messenger
	logger *slog.Logger
}

func (m messageLog) Deliver(ctx context.Context, msg switchboard.Message, earlier []string) (switchboard.Delivery, error) {
	d, err := m.next.Deliver(ctx, msg, earlier)
	attrs := []any{"run_id", msg.RunID, "key", msg.Key, "channel", msg.ChannelID, "source", msg.Source}
	switch code := switchboard.ErrorCode(err); {
	case err == nil:
		m.logger.InfoContext(ctx, "message delivered", append(attrs, "via", d.Via)...)
	case code == switchboard.ETHROTTLED:
		m.logger.DebugContext(ctx, "message waits its turn", append(attrs, "reason", redactURLs(switchboard.ErrorMessage(err)))...)
	case code == switchboard.EUNAVAILABLE:
		m.logger.WarnContext(ctx, "message delivery failed, retrying", append(attrs, "err", redactURLs(switchboard.ErrorMessage(err)))...)
	default:
		m.logger.ErrorContext(ctx, "message delivery failed", append(attrs, "err", redactURLs(switchboard.ErrorMessage(err)))...)
	}
	return d, err
}

// urlPath matches a URL's path and query, where Slack's response_url and
// incoming webhooks carry their credential.
var urlPath = regexp.MustCompile(`(https?://[^/\s"']+)[^\s"']*`)

// redactURLs keeps only the scheme and host of every URL in s.
func redactURLs(s string) string {
	return urlPath.ReplaceAllString(s, "$1/…")
}
