package awsevents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/aws/awsconfig"
)

// Limits SQS sets on ReceiveMessage.
const (
	DefaultWaitTime    = 20 * time.Second
	maxWaitTime        = 20 * time.Second
	DefaultMaxMessages = 10
	maxVisibility      = 12 * time.Hour
)

// Back-off of Run after a failed round: from minBackoff, doubling up to
// maxBackoff, with jitter so that replicas polling one queue drift apart.
const (
	minBackoff = time.Second
	maxBackoff = time.Minute
)

// minRoundGap is the least time between the starts of two rounds that came
// back empty. With long polling a round lasts WaitTime, so this never
// delays a real queue; it keeps Run from spinning on an endpoint that
// ignores WaitTimeSeconds.
const minRoundGap = time.Second

// Queue is an SQS queue that an EventBridge rule (or an SNS topic) writes
// events to, and how to reach it.
type Queue struct {
	// Name names the queue in logs and is the Trigger of its events; empty
	// means the last element of URL.
	Name string
	// URL is the queue URL: https://sqs.eu-west-1.amazonaws.com/123456789012/switchboard-events.
	URL string
	// Region is the queue's region; empty means the one in an AWS queue URL.
	Region string
	// Endpoint replaces the SQS (and STS) endpoint, for moto or LocalStack.
	Endpoint string
	// Profile, RoleARN with ExternalID, and AccessKeyID with AccessKeySecret
	// pick credentials as for an aws cloud (see package aws/awsconfig).
	Profile         string
	RoleARN         string
	ExternalID      string
	AccessKeyID     string
	AccessKeySecret string
	// WaitTime is how long one ReceiveMessage waits for a message (long
	// polling), in whole seconds: zero means DefaultWaitTime, at most 20s.
	WaitTime time.Duration
	// VisibilityTimeout is how long a received message stays hidden before
	// SQS delivers it again, unless deleted; zero means the queue's own.
	VisibilityTimeout time.Duration
	// MaxMessages is how many messages one ReceiveMessage returns at most,
	// 1 to 10; zero means DefaultMaxMessages.
	MaxMessages int
}

// awsQueueHost matches the host of an AWS queue URL and captures its region.
var awsQueueHost = regexp.MustCompile(`^sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$`)

// WithDefaults returns q with the defaults filled in: Name from the URL,
// Region from an AWS queue URL, WaitTime and MaxMessages.
func (q Queue) WithDefaults() Queue {
	if u, err := url.Parse(q.URL); err == nil {
		if q.Name == "" && strings.Trim(u.Path, "/") != "" {
			q.Name = path.Base(u.Path)
		}
		if m := awsQueueHost.FindStringSubmatch(u.Hostname()); q.Region == "" && m != nil {
			q.Region = m[1]
		}
	}
	if q.WaitTime == 0 {
		q.WaitTime = DefaultWaitTime
	}
	if q.MaxMessages == 0 {
		q.MaxMessages = DefaultMaxMessages
	}
	return q
}

// Validate reports what is wrong with q, naming the configuration key. Call
// it on q.WithDefaults().
func (q Queue) Validate() error {
	var errs []error
	name := q.Name
	if name == "" {
		name = q.URL
	}
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("awsevents: queue %q: "+format, append([]any{name}, args...)...))
	}
	if u, err := url.Parse(q.URL); q.URL == "" {
		bad("url is required (for example url: https://sqs.eu-west-1.amazonaws.com/123456789012/switchboard-events)")
	} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		bad("url %q is not a queue URL (for example url: https://sqs.eu-west-1.amazonaws.com/123456789012/switchboard-events)", q.URL)
	}
	if q.Region == "" {
		bad("region is required when the url is not an AWS queue URL (for example region: eu-west-1)")
	}
	for _, err := range q.loader().Check() {
		bad("%w", err)
	}
	if q.WaitTime < time.Second || q.WaitTime > maxWaitTime {
		bad("wait_time is %s; SQS long polling waits 1s to 20s", q.WaitTime)
	}
	if q.VisibilityTimeout < 0 || q.VisibilityTimeout > maxVisibility {
		bad("visibility_timeout is %s; SQS accepts 0s to 12h (0 keeps the queue's own)", q.VisibilityTimeout)
	}
	if q.MaxMessages < 1 || q.MaxMessages > 10 {
		bad("max_messages is %d; SQS returns 1 to 10 messages at a time", q.MaxMessages)
	}
	return errors.Join(errs...)
}

// Consumer receives the events of one queue and hands them to Handler. A
// message is deleted only once Handler has returned without error, that is
// once the runs it starts are durably recorded; until then SQS delivers it
// again after the visibility timeout, and Handler, which deduplicates by
// DeliveryID, starts nothing twice.
//
// A message that is not an event is logged and left in the queue: it can
// never succeed, and leaving it lets the queue's redrive policy move it to a
// dead-letter queue after maxReceiveCount receives, where a person can look
// at it. Deleting it here would lose it without a trace. Give the queue a
// redrive policy (docs/events.md), or such a message comes back every
// visibility timeout until the retention period ends.
//
// Make one with NewConsumer; it is safe to call ReceiveOnce or Run from
// several goroutines, each round being independent.
type Consumer struct {
	Queue
	Handler switchboard.EventHandler
	Logger  *slog.Logger
	// ReportFunc, when set, hears how each round of Run went: err is nil
	// when the queue answered and every event was handled; otherwise it is
	// the failure, and next is the pause before the next try.
	ReportFunc func(err error, next time.Duration)

	client *sqs.Client
}

// NewConsumer returns a Consumer of q that hands events to handler. It loads
// the SDK configuration (shared files, environment) but makes no API call,
// so a wrong URL, key or role shows up on the first receive. A nil logger
// logs nothing.
func NewConsumer(ctx context.Context, q Queue, handler switchboard.EventHandler, logger *slog.Logger) (*Consumer, error) {
	q = q.WithDefaults()
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, errors.New("awsevents: NewConsumer needs an event handler")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client, err := newClient(ctx, q)
	if err != nil {
		return nil, err
	}
	return &Consumer{
		Queue:   q,
		Handler: handler,
		Logger:  logger.With("queue", q.Name),
		client:  client,
	}, nil
}

// loader is what the shared AWS configuration loader needs of q.
func (q Queue) loader() awsconfig.Options {
	return awsconfig.Options{
		Region: q.Region, Endpoint: q.Endpoint, Profile: q.Profile,
		RoleARN: q.RoleARN, ExternalID: q.ExternalID,
		AccessKeyID: q.AccessKeyID, AccessKeySecret: q.AccessKeySecret,
	}
}

// newClient builds an SQS client from the configuration every AWS adapter
// loads (package aws/awsconfig), with the endpoint replaced for moto.
func newClient(ctx context.Context, q Queue) (*sqs.Client, error) {
	cfg, err := awsconfig.Load(ctx, q.loader())
	if err != nil {
		return nil, fmt.Errorf("awsevents: queue %q: load AWS configuration: %w", q.Name, err)
	}
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		if q.Endpoint != "" {
			o.BaseEndpoint = awssdk.String(q.Endpoint)
		}
	}), nil
}

// ReceiveOnce makes one ReceiveMessage call, long polling for up to
// WaitTime, and handles what it returns: each event is handed to Handler,
// and the messages Handler took are deleted in one batch. handled counts
// those. The error joins what went wrong: the receive, a Handler call, the
// delete. A message that is not an event is logged and left, not an error
// (see Consumer).
func (c *Consumer) ReceiveOnce(ctx context.Context) (handled int, err error) {
	handled, _, err = c.receive(ctx)
	return handled, err
}

// receive is ReceiveOnce that also says how many messages came back.
func (c *Consumer) receive(ctx context.Context) (handled, received int, err error) {
	in := &sqs.ReceiveMessageInput{
		QueueUrl:            awssdk.String(c.URL),
		MaxNumberOfMessages: int32(c.MaxMessages),
		WaitTimeSeconds:     int32((c.WaitTime + time.Second - 1) / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
		},
	}
	if c.VisibilityTimeout > 0 {
		in.VisibilityTimeout = int32((c.VisibilityTimeout + time.Second - 1) / time.Second)
	}
	out, err := c.client.ReceiveMessage(ctx, in)
	if err != nil {
		return 0, 0, fmt.Errorf("awsevents: receive from queue %q: %w", c.Name, err)
	}
	var errs []error
	var done []types.DeleteMessageBatchRequestEntry
	for i, m := range out.Messages {
		log := c.Logger.With(
			"message_id", awssdk.ToString(m.MessageId),
			"receive_count", m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)],
		)
		ev, err := Parse([]byte(awssdk.ToString(m.Body)))
		if err != nil {
			log.WarnContext(ctx, "left a message that is not an EventBridge event in the queue; its redrive policy moves it to the dead-letter queue",
				"err", switchboard.ErrorMessage(err))
			continue
		}
		ev.Trigger = c.Name
		if ev.ReceivedAt.IsZero() {
			ev.ReceivedAt = sentAt(m)
		}
		log = log.With("delivery_id", ev.DeliveryID, "kind", ev.Kind)
		runs, err := c.Handler.HandleEvent(ctx, ev)
		if err != nil {
			log.ErrorContext(ctx, "event not handled; it comes back after the visibility timeout", "err", err)
			errs = append(errs, fmt.Errorf("awsevents: handle event %s from queue %q: %w", ev.DeliveryID, c.Name, err))
			continue
		}
		log.InfoContext(ctx, "event handled", "subject", ev.Subject, "runs", runs)
		done = append(done, types.DeleteMessageBatchRequestEntry{
			Id:            awssdk.String("m" + strconv.Itoa(i)),
			ReceiptHandle: m.ReceiptHandle,
		})
	}
	if err := c.delete(ctx, done); err != nil {
		errs = append(errs, err)
	}
	return len(done), len(out.Messages), errors.Join(errs...)
}

// delete deletes handled messages. One that fails to be deleted comes back
// after the visibility timeout and is deduplicated by the handler, so a
// failure here costs a repeated HandleEvent, never a repeated run.
func (c *Consumer) delete(ctx context.Context, entries []types.DeleteMessageBatchRequestEntry) error {
	if len(entries) == 0 {
		return nil
	}
	// The runs are recorded: finish the delete even when ctx is cancelled
	// mid-round, so a shutdown does not cause a redelivery.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	out, err := c.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{
		QueueUrl: awssdk.String(c.URL),
		Entries:  entries,
	})
	if err != nil {
		return fmt.Errorf("awsevents: delete %d handled message(s) from queue %q: %w", len(entries), c.Name, err)
	}
	if len(out.Failed) > 0 {
		f := out.Failed[0]
		return fmt.Errorf("awsevents: delete %d of %d handled message(s) from queue %q failed, e.g. %s: %s",
			len(out.Failed), len(entries), c.Name, awssdk.ToString(f.Code), awssdk.ToString(f.Message))
	}
	return nil
}

// sentAt is when SQS received the message, for events that carry no time.
func sentAt(m types.Message) time.Time {
	ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64)
	if err != nil {
		return time.Now().UTC()
	}
	return time.UnixMilli(ms).UTC()
}

// Run receives and handles events until ctx is done, then returns nil. A
// failed round is logged as a warning and followed by a pause that doubles
// from one second up to a minute and resets after a round that works, so a
// queue that is missing or refused is retried without flooding the log or
// the API. ReportFunc hears how each round went.
func (c *Consumer) Run(ctx context.Context) error {
	c.Logger.InfoContext(ctx, "receiving events", "url", c.URL, "wait_time", c.WaitTime)
	failures := 0
	for ctx.Err() == nil {
		start := time.Now()
		handled, received, err := c.receive(ctx)
		var pause time.Duration
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			failures++
			pause = backoff(failures)
			c.Logger.WarnContext(ctx, "round failed; trying again later", "err", err, "handled", handled, "failures", failures, "retry_in", pause.Round(time.Millisecond))
		case received == 0:
			failures = 0
			pause = minRoundGap - time.Since(start)
		default:
			failures = 0
		}
		if c.ReportFunc != nil {
			c.ReportFunc(err, max(pause, 0))
		}
		if pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
	}
	return nil
}

// backoff is the pause after the n-th failed round in a row: exponential
// with jitter between half and all of it.
func backoff(n int) time.Duration {
	d := maxBackoff
	if n < 7 {
		d = min(maxBackoff, minBackoff<<(n-1))
	}
	return d/2 + rand.N(d/2+1)
}
