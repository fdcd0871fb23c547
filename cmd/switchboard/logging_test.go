package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
)

type fakeHandler struct {
	ack switchboard.Ack
	err error
}

func (f fakeHandler) HandleCommand(context.Context, switchboard.Request) (switchboard.Ack, error) {
	return f.ack, f.err
}

type fakeAdvancer func(run *switchboard.Run) (switchboard.Outcome, error)

func (f fakeAdvancer) Advance(_ context.Context, run *switchboard.Run, _ switchboard.RunSaver) (switchboard.Outcome, error) {
	return f(run)
}

type fakeMessenger struct{ err error }

func (f fakeMessenger) Deliver(context.Context, switchboard.Message, []string) (switchboard.Delivery, error) {
	return switchboard.Delivery{Via: "response_url"}, f.err
}

// Commands, runs and messages are logged with their run id, at info (debug
// adds each step), and a response_url or webhook inside an error is cut to
// its host.
func TestOperatorLog(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	req := switchboard.Request{Source: "slack", Command: "/ec2", Text: "start tools", UserID: "U0OPS1", ChannelID: "C0OPS",
		ResponseURL: "https://hooks.slack.com/commands/T1/123/s3cretpath"}

	_, _ = logCommands(fakeHandler{ack: switchboard.Ack{RunID: "r-1"}}, logger).HandleCommand(ctx, req)
	_, _ = logCommands(fakeHandler{err: switchboard.Errorf(switchboard.EFORBIDDEN, "Sorry, you may not use /ec2 here.")}, logger).HandleCommand(ctx, req)

	run := &switchboard.Run{ID: "r-1", Workflow: "ec2.start", State: switchboard.RunQueued, Request: req, CreatedAt: time.Now(),
		Plan: []switchboard.Step{{Kind: "instances"}, {Kind: "notify"}}}
	runs := logRuns(fakeAdvancer(func(run *switchboard.Run) (switchboard.Outcome, error) {
		switch run.State {
		case switchboard.RunQueued:
			run.State = switchboard.RunWaiting
		case switchboard.RunWaiting:
			if run.Cursor == 1 {
				run.State, run.Result = switchboard.RunSucceeded, "tools is now running."
				return switchboard.Outcome{}, nil
			}
			run.Cursor = 1
		}
		return switchboard.Outcome{Wait: 2 * time.Second, Audit: []switchboard.AuditEvent{{Kind: "action", Subject: "start i-1", Outcome: "ok"}}}, nil
	}), logger)
	for range 3 {
		if _, err := runs.Advance(ctx, run, nil); err != nil {
			t.Fatal(err)
		}
	}
	failed := &switchboard.Run{ID: "r-2", Workflow: "restart", State: switchboard.RunRunning, Plan: []switchboard.Step{{Kind: "stop"}}}
	_, _ = logRuns(fakeAdvancer(func(run *switchboard.Run) (switchboard.Outcome, error) {
		run.State, run.Error = switchboard.RunFailed, "Could not stop i-1: refused"
		return switchboard.Outcome{}, nil
	}), logger).Advance(ctx, failed, nil)

	msg := switchboard.Message{RunID: "r-1", Key: "step0.answer", ChannelID: "C0OPS", Source: "slack", ResponseURL: req.ResponseURL}
	_, _ = logMessages(fakeMessenger{}, logger).Deliver(ctx, msg, nil)
	_, _ = logMessages(fakeMessenger{err: switchboard.Errorf(switchboard.EUNAVAILABLE,
		`Slack did not answer (Post "https://hooks.slack.com/commands/T1/123/s3cretpath": dial tcp: refused); the message will be retried.`)}, logger).Deliver(ctx, msg, nil)

	out := buf.String()
	for _, want := range []string{
		`level=INFO msg="command received" command=/ec2 text="start tools" user=U0OPS1 channel=C0OPS source=slack`,
		`level=INFO msg="command refused" command=/ec2`,
		`level=INFO msg="run started" run_id=r-1 workflow=ec2.start source=slack`,
		`level=DEBUG msg="run step" run_id=r-1 workflow=ec2.start step=1 kind=instances`,
		`level=DEBUG msg="run audit" run_id=r-1 workflow=ec2.start kind=action subject="start i-1" outcome=ok`,
		`level=INFO msg="run parked" run_id=r-1 workflow=ec2.start step=1 kind=instances wait=2s`,
		`level=INFO msg="run parked" run_id=r-1 workflow=ec2.start step=2 kind=notify wait=2s`,
		`level=INFO msg="run finished" run_id=r-1 workflow=ec2.start result="tools is now running."`,
		`level=WARN msg="run failed" run_id=r-2 workflow=restart error="Could not stop i-1: refused" step=1`,
		`level=INFO msg="message delivered" run_id=r-1 key=step0.answer channel=C0OPS source=slack via=response_url`,
		`level=WARN msg="message delivery failed, retrying" run_id=r-1`,
		`https://hooks.slack.com/…`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cretpath") {
		t.Errorf("the log holds a response_url's path:\n%s", out)
	}
	if strings.Contains(out, `msg="command received"`) && !strings.Contains(out, "run_id=r-1 ") && !strings.Contains(out, "run_id=r-1\n") {
		t.Errorf("command received without its run id:\n%s", out)
	}
}
