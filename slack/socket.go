package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	goslack "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/switchboardhq/switchboard"
)

// SocketConfig is what Socket Mode needs: the same parts as the HTTP
// handler, plus the tokens that open the connection instead of a signing
// secret (the WebSocket is authenticated by the app-level token).
type SocketConfig struct {
	AppToken string // xapp-…, with the connections:write scope; required
	BotToken string // xoxb-…
	// APIURL is Slack's Web API base URL; https://slack.com/api/ when empty.
	APIURL string

	Commands   switchboard.CommandHandler // required
	Deliveries Deduper                    // required
	Auditor    Auditor
	// Rejections samples deliveries from other workspaces and apps into
	// the audit log and the log (see HandlerConfig.Rejections).
	Rejections   switchboard.Rejecter
	Interactions InteractionHandler
	Events       EventHandler
	Meter        switchboard.Meter
	Logger       *slog.Logger
	NowFunc      func() time.Time
	// TeamID and AppID, when set, are the only workspace and app whose
	// deliveries are taken.
	TeamID, AppID string
	// ResponseURLs are where a delivery's response_url may point; nil
	// checks nothing.
	ResponseURLs *switchboard.AllowList
}

func (c SocketConfig) validate() error {
	switch {
	case c.AppToken == "":
		return errors.New("slack socket mode: no app token: set slack.app_token to an xapp- token with connections:write (App settings > Basic Information > App-Level Tokens)")
	case c.Commands == nil:
		return errors.New("slack socket mode: Commands is required")
	case c.Deliveries == nil:
		return errors.New("slack socket mode: Deliveries is required: Slack redelivers unacked envelopes and they must be deduplicated")
	}
	return nil
}

// Reconnect pacing for when slack-go's client gives up on its own; it
// already retries a failed dial with backoff before returning.
const (
	minReconnectDelay = time.Second
	maxReconnectDelay = time.Minute
)

// RunSocketMode receives slash commands, interactions and events over a
// Socket Mode WebSocket until ctx is done, then returns nil. It returns an
// error when the configuration is incomplete or Slack refuses the app token,
// since reconnecting cannot fix either. Each delivery goes through the same
// code as its HTTP twin and is acked through the socket.
func RunSocketMode(ctx context.Context, cfg SocketConfig) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	rc := &receiver{
		commands:     cfg.Commands,
		deliveries:   cfg.Deliveries,
		auditor:      cfg.Auditor,
		rejections:   cfg.Rejections,
		interactions: cfg.Interactions,
		events:       cfg.Events,
		teamID:       cfg.TeamID,
		appID:        cfg.AppID,
		responseURLs: cfg.ResponseURLs,
	}
	rc.withDefaults(cfg.Meter, cfg.Logger, cfg.NowFunc)

	// slack-go logs through a *log.Logger; route it into ours. Its debug
	// output stays off: it would log payloads.
	sdkLog := slog.NewLogLogger(rc.log.With("component", "slack-go").Handler(), slog.LevelDebug)
	api := goslack.New(cfg.BotToken,
		goslack.OptionAppLevelToken(cfg.AppToken),
		goslack.OptionAPIURL(apiBaseURL(cfg.APIURL)),
		goslack.OptionLog(sdkLog),
	)
	client := socketmode.New(api, socketmode.OptionLog(sdkLog))

	ctx, cancel := context.WithCancel(ctx)
	var handlers sync.WaitGroup
	defer func() {
		cancel()
		handlers.Wait()
	}()
	handlers.Go(func() { consumeSocketEvents(ctx, client, rc, &handlers) })

	delay := minReconnectDelay
	for {
		err := client.RunContext(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if refusedAuth(err) {
			return fmt.Errorf("slack socket mode: Slack refused the app token (%w): check slack.app_token", err)
		}
		rc.log.Warn("socket mode connection ended; reconnecting", "err", err, "delay", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil
		}
		delay = min(2*delay, maxReconnectDelay)
	}
}

// refusedAuth reports whether err means the token is wrong, which no
// reconnect can fix. These are the errors slack-go itself treats as fatal.
func refusedAuth(err error) bool {
	var resp goslack.SlackErrorResponse
	if errors.As(err, &resp) {
		switch resp.Err {
		case "invalid_auth", "account_inactive", "not_authed", "token_revoked", "token_expired", "not_allowed_token_type":
			return true
		}
	}
	var status goslack.StatusCodeError
	return errors.As(err, &status) && status.Code == http.StatusNotFound
}

// consumeSocketEvents reads the client's events until ctx is done and
// handles each Slack request in its own goroutine: one slow handler must not
// hold up the acks of the others past Slack's three seconds.
func consumeSocketEvents(ctx context.Context, client *socketmode.Client, rc *receiver, handlers *sync.WaitGroup) {
	for {
		select {
		case <-ctx.Done():
			return
		case evt := <-client.Events:
			switch evt.Type {
			case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive,
				socketmode.EventTypeEventsAPI, socketmode.EventTypeErrorBadMessage:
				handlers.Go(func() { handleSocketEvent(ctx, client, rc, evt) })
			case socketmode.EventTypeConnecting:
				rc.log.Debug("socket mode connecting")
			case socketmode.EventTypeConnected:
				rc.log.Info("socket mode connected")
			case socketmode.EventTypeConnectionError, socketmode.EventTypeInvalidAuth,
				socketmode.EventTypeIncomingError, socketmode.EventTypeErrorWriteFailed:
				rc.log.Warn("socket mode trouble", "event", evt.Type, "detail", fmt.Sprint(evt.Data))
			default:
				rc.log.Debug("socket mode event", "event", evt.Type)
			}
		}
	}
}

// acker is the part of socketmode.Client that answers an envelope.
type acker interface {
	AckCtx(ctx context.Context, envelopeID string, payload any) error
}

func handleSocketEvent(ctx context.Context, client acker, rc *receiver, evt socketmode.Event) {
	start := time.Now()
	req := evt.Request
	if evt.Type == socketmode.EventTypeErrorBadMessage {
		// slack-go could not decode the payload, e.g. an event whose inner
		// type it does not know. Our own event path does not need it to.
		bad, ok := evt.Data.(*socketmode.ErrorBadMessage)
		if !ok {
			return
		}
		req = &socketmode.Request{}
		if err := json.Unmarshal(bad.Message, req); err != nil || req.EnvelopeID == "" {
			rc.log.Warn("socket mode message not understood", "err", bad.Cause)
			return
		}
		if req.Type != socketmode.RequestTypeEventsAPI {
			// Redelivering it will not make it parse: ack and move on.
			rc.log.Warn("socket mode message not understood", "type", req.Type, "err", bad.Cause)
			ackSocket(ctx, client, rc, req.EnvelopeID, nil)
			rc.meter.RequestServed(sourceSocket, outcomeInvalid, time.Since(start))
			return
		}
	}
	if req == nil {
		return
	}

	var (
		outcome string
		payload any
	)
	switch req.Type {
	case socketmode.RequestTypeSlashCommands:
		sc, ok := evt.Data.(goslack.SlashCommand)
		if !ok {
			return
		}
		reply := rc.runCommand(ctx, sc, sourceSocket, rc.now())
		outcome, payload = reply.Outcome, reply.body()
	case socketmode.RequestTypeInteractive:
		ic, ok := evt.Data.(goslack.InteractionCallback)
		if !ok {
			return
		}
		outcome = rc.deliverInteraction(ctx, ic, sourceSocket, rc.now())
	case socketmode.RequestTypeEventsAPI:
		var err error
		outcome, err = rc.deliverEvent(ctx, req.Payload, sourceSocket, req.RetryAttempt, rc.now())
		var invalid *invalidError
		if errors.As(err, &invalid) {
			rc.log.Warn("socket mode event malformed", "reason", invalid.reason)
			rc.audit(ctx, switchboard.AuditEvent{Kind: switchboard.AuditRequest, Subject: "socket events_api", Outcome: outcomeInvalid, Detail: "event: " + invalid.reason})
		} else if err != nil {
			// Not recorded: leave it unacked so Slack delivers it again.
			rc.meter.RequestServed(sourceSocket, outcome, time.Since(start))
			return
		}
	default:
		return
	}
	ackSocket(ctx, client, rc, req.EnvelopeID, payload)
	rc.meter.RequestServed(sourceSocket, outcome, time.Since(start))
}

func ackSocket(ctx context.Context, client acker, rc *receiver, envelopeID string, payload any) {
	if err := client.AckCtx(ctx, envelopeID, payload); err != nil {
		rc.log.Error("socket mode ack", "envelope", envelopeID, "err", err)
	}
}

// apiBaseURL returns Slack's Web API base URL with the trailing slash
// slack-go joins method names onto.
func apiBaseURL(u string) string {
	if u == "" {
		return goslack.APIURL
	}
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}
