package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	goslack "github.com/slack-go/slack"
	"golang.org/x/time/rate"

	"github.com/switchboardhq/switchboard"
)

// Messenger posts a run's messages to Slack: through the request's
// response_url while it works (no bot token needed), otherwise with
// chat.postMessage and the bot token. It keeps Slack's delivery rules: at
// most five response_url posts within thirty minutes of the request, about
// one chat.postMessage a second per channel, and chat.postMessage when
// Slack refuses a response_url.
type Messenger struct {
	BotToken string
	// APIURL is Slack's Web API base URL; https://slack.com/api/ when empty.
	APIURL string
	// HTTPClient is used for both kinds of post; a client with a 15 s
	// timeout when nil.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Webhooks are incoming webhook URLs by name: a message whose channel
	// is webhook:NAME is posted there.
	Webhooks map[string]string
	// ResponseURLs are where a response_url may point; a message whose
	// response_url is elsewhere is never posted there (it goes with
	// chat.postMessage). nil checks nothing.
	ResponseURLs *switchboard.AllowList

	mu     sync.Mutex
	paces  map[string]*rate.Limiter // per channel
	nowFor func() time.Time         // tests
}

// Slack's limits for a response_url: five posts within thirty minutes.
const (
	responseURLMaxPosts = 5
	responseURLLifetime = 30 * time.Minute
)

// The ways a message reaches Slack, as recorded with it.
const (
	viaResponseURL = "response_url"
	viaPostMessage = "chat.postMessage"
	viaWebhook     = "webhook"
)

// webhookPrefix marks a channel that is an incoming webhook, by name.
const webhookPrefix = "webhook:"

// postWebhook posts msg to the incoming webhook called name. Slack answers
// "ok", or an error word such as no_service (the webhook was removed) or
// channel_is_archived.
func (m *Messenger) postWebhook(ctx context.Context, name string, msg switchboard.Message) error {
	u, ok := m.Webhooks[name]
	if !ok {
		return switchboard.Errorf(switchboard.EINVALID, "No incoming webhook called %q is configured (slack.webhooks).", name)
	}
	return m.postJSON(ctx, u, struct {
		Text   string          `json:"text"`
		Blocks []goslack.Block `json:"blocks,omitempty"`
	}{msg.Text, approvalBlocks(msg)}, hookAnswers{
		what:    fmt.Sprintf("the incoming webhook %q", name),
		badURL:  fmt.Sprintf("The incoming webhook %q has a URL that cannot be used.", name),
		refused: fmt.Sprintf("Slack refused the incoming webhook %q (HTTP %%d %%s): check that it still exists and its channel is not archived.", name),
	})
}

// hookAnswers are the sentences for the ways a post to a Slack hook URL (a
// response_url, an incoming webhook) can fail: what it is, a URL that
// cannot be used, and Slack's refusal (a format of the status and reason).
type hookAnswers struct {
	what, badURL, refused string
}

// postJSON posts payload to a Slack hook URL, which answers "ok" or a short
// reason such as "expired_url" or "no_service", and maps the answer onto
// the codes the delivery acts on.
func (m *Messenger) postJSON(ctx context.Context, u string, payload any, say hookAnswers) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", say.what, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return switchboard.Errorf(switchboard.EINVALID, "%s", say.badURL)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client().Do(req)
	if err != nil {
		return unreachable(ctx, err)
	}
	defer resp.Body.Close()
	// More than a short reason is not worth reading.
	reason, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusTooManyRequests:
		return throttled(retryAfter(resp.Header, time.Now()))
	case code >= 500:
		return switchboard.Errorf(switchboard.EUNAVAILABLE, "Slack answered %d to %s; it will be retried.", code, say.what)
	default:
		why := strings.TrimSpace(string(reason))
		if why == "" || !printable(why) {
			why = http.StatusText(code)
		}
		return switchboard.Errorf(switchboard.EINVALID, say.refused, code, why)
	}
}

// maxPaces is how many channels' pacers are kept before the idle ones are
// dropped.
const maxPaces = 1000

// Deliver posts m the way Slack's rules allow: through the request's
// response_url while it has posts left and has not expired, otherwise with
// chat.postMessage (paced per channel: a message that must wait comes back
// ETHROTTLED with the wait).
func (m *Messenger) Deliver(ctx context.Context, msg switchboard.Message, earlier []string) (switchboard.Delivery, error) {
	if name, ok := strings.CutPrefix(msg.ChannelID, webhookPrefix); ok {
		if err := m.pace(msg.ChannelID); err != nil {
			return switchboard.Delivery{}, err
		}
		return switchboard.Delivery{Via: viaWebhook}, m.postWebhook(ctx, name, msg)
	}
	if d, ok := m.find(ctx, msg); ok {
		return d, nil
	}
	via := viaPostMessage
	if msg.ResponseURL != "" && msg.ThreadRef == "" {
		used := 0
		for _, v := range earlier {
			if v == viaResponseURL {
				used++
			}
		}
		if used < responseURLMaxPosts && m.now().Sub(msg.RequestedAt) < responseURLLifetime {
			via = viaResponseURL
		} else {
			msg.ResponseURL = ""
		}
	}
	if via == viaPostMessage {
		if err := m.pace(msg.ChannelID); err != nil {
			return switchboard.Delivery{}, err
		}
	}
	ts, err := m.Post(ctx, msg)
	if err != nil && via == viaResponseURL && switchboard.ErrorCode(err) == switchboard.EINVALID {
		// Slack refused the response_url (expired or used up): the bot
		// token can still post.
		if m.Logger != nil {
			m.Logger.Info("response_url refused, falling back to chat.postMessage", "run", msg.RunID, "err", err)
		}
		msg.ResponseURL, via = "", viaPostMessage
		if err := m.pace(msg.ChannelID); err != nil {
			return switchboard.Delivery{}, err
		}
		ts, err = m.Post(ctx, msg)
	}
	if err != nil {
		return switchboard.Delivery{}, err
	}
	return switchboard.Delivery{Via: via, Ref: ts}, nil
}

func (m *Messenger) now() time.Time {
	if m.nowFor != nil {
		return m.nowFor()
	}
	return time.Now()
}

// pace reserves a slot to post in channel: chat.postMessage takes about
// one message a second per channel. A message that would have to wait is
// not kept waiting here; it comes back ETHROTTLED with the wait.
func (m *Messenger) pace(channel string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.paces == nil {
		m.paces = map[string]*rate.Limiter{}
	}
	lim, ok := m.paces[channel]
	if !ok {
		if len(m.paces) >= maxPaces {
			// A pacer back at its full burst remembers nothing worth
			// keeping.
			now := m.now()
			for ch, l := range m.paces {
				if l.TokensAt(now) >= float64(l.Burst()) {
					delete(m.paces, ch)
				}
			}
		}
		lim = rate.NewLimiter(1, 3)
		m.paces[channel] = lim
	}
	r := lim.ReserveN(m.now(), 1)
	if d := r.DelayFrom(m.now()); d > 0 {
		r.CancelAt(m.now())
		e := switchboard.Errorf(switchboard.ETHROTTLED, "Slack takes about one message a second in channel %s; this one waits its turn.", channel)
		e.RetryAfter = d
		return e
	}
	return nil
}

var _ switchboard.Messenger = (*Messenger)(nil)

// defaultHTTPClient bounds a post that Slack never answers, so the worker
// can retry it instead of hanging, and follows no redirect.
var defaultHTTPClient = &http.Client{Timeout: 15 * time.Second, CheckRedirect: switchboard.NoRedirects}

// Post sends m as it is: to its response_url when it has one (and is not a
// reply in a thread), with chat.postMessage otherwise. The error tells the
// caller what to do next: an *Error with ETHROTTLED (and RetryAfter) or
// EUNAVAILABLE means retry; EINVALID on a response_url means the URL is
// spent or expired and chat.postMessage is the way left; anything else will
// not succeed by retrying.
func (m *Messenger) Post(ctx context.Context, msg switchboard.Message) (string, error) {
	if msg.ResponseURL != "" && msg.ThreadRef == "" {
		return "", m.postResponseURL(ctx, msg)
	}
	return m.postMessage(ctx, msg)
}

func (m *Messenger) client() *http.Client {
	if m.HTTPClient != nil {
		return m.HTTPClient
	}
	return defaultHTTPClient
}

// responseURLBody is what a response_url takes. replace_original is false
// so an answer never overwrites the message with the approval buttons,
// unless the message is the decision on those buttons.
type responseURLBody struct {
	ResponseType    string          `json:"response_type"`
	ReplaceOriginal bool            `json:"replace_original"`
	Text            string          `json:"text"`
	Blocks          []goslack.Block `json:"blocks,omitempty"`
}

// approvalBlocks is an approval request: the question and Approve and Deny
// buttons whose value is the approval id.
func approvalBlocks(msg switchboard.Message) []goslack.Block {
	if msg.ApprovalID == "" {
		return nil
	}
	text := goslack.NewTextBlockObject(goslack.MarkdownType, msg.Text, false, false)
	approve := goslack.NewButtonBlockElement("approve", msg.ApprovalID, goslack.NewTextBlockObject(goslack.PlainTextType, "Approve", false, false))
	approve.Style = goslack.StylePrimary
	deny := goslack.NewButtonBlockElement("deny", msg.ApprovalID, goslack.NewTextBlockObject(goslack.PlainTextType, "Deny", false, false))
	deny.Style = goslack.StyleDanger
	return []goslack.Block{
		goslack.NewSectionBlock(text, nil, nil),
		goslack.NewActionBlock("approval:"+msg.ApprovalID, approve, deny),
	}
}

func (m *Messenger) postResponseURL(ctx context.Context, msg switchboard.Message) error {
	if m.ResponseURLs != nil {
		u, err := url.Parse(msg.ResponseURL)
		if err != nil || m.ResponseURLs.CheckURL(u, settingResponseURLs) != nil {
			return switchboard.Errorf(switchboard.EINVALID, "The response_url of this request is not on Slack's hosts (slack.response_url_hosts); post with chat.postMessage instead.")
		}
	}
	responseType := "in_channel"
	if msg.Ephemeral {
		responseType = "ephemeral"
	}
	return m.postJSON(ctx, msg.ResponseURL, responseURLBody{ResponseType: responseType, ReplaceOriginal: msg.Replace, Text: msg.Text,
		Blocks: approvalBlocks(msg)}, hookAnswers{
		what: "the response_url post",
		// The URL itself is broken: no retry will help, chat.postMessage may.
		badURL:  "Slack's response_url for this request is not a valid URL; post with chat.postMessage instead.",
		refused: "Slack refused the response_url (HTTP %d %s): it expired or was used too often; post with chat.postMessage instead.",
	})
}

func (m *Messenger) postMessage(ctx context.Context, msg switchboard.Message) (string, error) {
	if m.BotToken == "" {
		return "", switchboard.Errorf(switchboard.EINVALID, "no bot token configured: set slack.bot_token to answer after response_url expires")
	}
	if msg.ChannelID == "" {
		return "", switchboard.Errorf(switchboard.EINVALID, "The message has no channel to post to.")
	}
	api := goslack.New(m.BotToken,
		goslack.OptionAPIURL(apiBaseURL(m.APIURL)),
		goslack.OptionHTTPClient(m.client()),
	)
	// Not escaped: run texts use Slack's own markup (<@U123>, <url|label>).
	opts := []goslack.MsgOption{goslack.MsgOptionText(msg.Text, false), goslack.MsgOptionMetadata(messageMetadata(msg))}
	if blocks := approvalBlocks(msg); blocks != nil {
		opts = append(opts, goslack.MsgOptionBlocks(blocks...))
	}
	if msg.ThreadRef != "" {
		opts = append(opts, goslack.MsgOptionTS(msg.ThreadRef))
	}
	_, ts, err := api.PostMessageContext(ctx, msg.ChannelID, opts...)
	if err == nil {
		return ts, nil
	}
	return "", postMessageError(ctx, msg.ChannelID, err)
}

// postMessageError maps what slack-go returned from chat.postMessage onto
// the codes the worker acts on.
func postMessageError(ctx context.Context, channel string, err error) error {
	var limited *goslack.RateLimitedError
	var status goslack.StatusCodeError
	var api goslack.SlackErrorResponse
	switch {
	case errors.As(err, &limited):
		return throttled(limited.RetryAfter)
	case errors.As(err, &status):
		if status.Code == http.StatusTooManyRequests {
			return throttled(0)
		}
		if status.Code >= 500 {
			return switchboard.Errorf(switchboard.EUNAVAILABLE, "Slack answered %d to chat.postMessage; it will be retried.", status.Code)
		}
		return switchboard.Errorf(switchboard.EINVALID, "Slack refused chat.postMessage with HTTP %d.", status.Code)
	case errors.As(err, &api):
		switch api.Err {
		case "ratelimited":
			return throttled(0)
		case "internal_error", "fatal_error", "service_unavailable", "request_timeout":
			return switchboard.Errorf(switchboard.EUNAVAILABLE, "Slack failed to post the message (%s); it will be retried.", api.Err)
		case "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "missing_scope", "not_allowed_token_type":
			return switchboard.Errorf(switchboard.EUNAUTHORIZED, "Slack refused the bot token (%s): check slack.bot_token and that the app has the chat:write scope.", api.Err)
		case "channel_not_found", "not_in_channel", "is_archived":
			return switchboard.Errorf(switchboard.EINVALID, "Slack cannot post to channel %s (%s): invite the Switchboard app to it, or add the chat:write.public scope.", channel, api.Err)
		default:
			return switchboard.Errorf(switchboard.EINVALID, "Slack refused the message for channel %s (%s).", channel, api.Err)
		}
	default:
		return unreachable(ctx, err)
	}
}

// unreachable reports a post that got no answer. The URL is left out of the
// message: a response_url is a credential for its channel.
func unreachable(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("post to slack: %w", ctx.Err())
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return switchboard.Errorf(switchboard.EUNAVAILABLE, "Slack did not answer (%v); the message will be retried.", err)
}

func throttled(after time.Duration) error {
	e := switchboard.Errorf(switchboard.ETHROTTLED, "Slack asked Switchboard to slow down; the message will be retried.")
	e.RetryAfter = after
	return e
}

// maxRetryAfterSecs caps what a peer may ask for, so a silly header cannot
// park a message for days or overflow a Duration.
const maxRetryAfterSecs = 3600

// retryAfter reads a Retry-After header, in seconds or as an HTTP date; 0
// when absent or unreadable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(min(secs, maxRetryAfterSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfterSecs*time.Second)
	}
	return 0
}

// printable reports whether s is short plain text worth quoting to a person.
func printable(s string) bool {
	if len(s) > 80 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
