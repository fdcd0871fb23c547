package awsevents_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/awsevents"
	"github.com/switchboardhq/switchboard/testenv"
)

// sqsBundle is a queue on moto, the SDK client the test uses to fill and
// inspect it, and a consumer of it.
type sqsBundle struct {
	client   *sqs.Client
	url      string
	events   *fakeEvents
	consumer *awsevents.Consumer
}

// setupSQS creates a queue named name on moto and a consumer of it with a
// one-second long poll and visibility timeout, so redeliveries come quickly.
func setupSQS(t *testing.T, name string) *sqsBundle {
	t.Helper()
	endpoint, region := testenv.Moto(t)
	ctx := t.Context()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "")))
	if err != nil {
		t.Fatal(err)
	}
	client := sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = awssdk.String(endpoint) })
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: awssdk.String(name)})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	b := &sqsBundle{client: client, url: awssdk.ToString(out.QueueUrl), events: &fakeEvents{}}
	b.consumer, err = awsevents.NewConsumer(ctx, awsevents.Queue{
		URL:               b.url,
		Region:            region,
		Endpoint:          endpoint,
		AccessKeyID:       "testing",
		AccessKeySecret:   "testing",
		WaitTime:          time.Second,
		VisibilityTimeout: time.Second,
	}, b.events, nil)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	return b
}

func (b *sqsBundle) send(t *testing.T, bodies ...string) {
	t.Helper()
	for _, body := range bodies {
		if _, err := b.client.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: &b.url, MessageBody: awssdk.String(body)}); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
}

// inQueue counts the messages still in the queue, visible or in flight.
func (b *sqsBundle) inQueue(t *testing.T) int {
	t.Helper()
	out, err := b.client.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: &b.url,
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatalf("get queue attributes: %v", err)
	}
	visible, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	hidden, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return visible + hidden
}

// receiveUntil calls ReceiveOnce until the handler has seen n events, a
// bounded number of times; it returns how many messages were handled.
func (b *sqsBundle) receiveUntil(t *testing.T, n int) int {
	t.Helper()
	handled := 0
	for range 10 {
		if len(b.events.received()) >= n {
			break
		}
		h, err := b.consumer.ReceiveOnce(t.Context())
		if err != nil {
			t.Fatalf("ReceiveOnce: %v", err)
		}
		handled += h
	}
	if got := len(b.events.received()); got != n {
		t.Fatalf("handler saw %d events, want %d", got, n)
	}
	return handled
}

func TestConsumerReceiveOnce(t *testing.T) {
	t.Parallel()
	b := setupSQS(t, "switchboard-events")
	terminated := string(sample(t, "ec2-state-change-terminated.json"))
	health := string(sample(t, "health-instance-retirement.json"))
	// EventBridge delivered the state change twice; a stray message is not an
	// event at all.
	b.send(t, terminated, "this is not an event", health, terminated)

	if handled := b.receiveUntil(t, 3); handled != 3 {
		t.Errorf("ReceiveOnce handled %d messages, want 3", handled)
	}
	var ids []string
	for _, ev := range b.events.received() {
		ids = append(ids, ev.DeliveryID)
		if ev.Source != "aws" || ev.Trigger != "switchboard-events" || ev.ReceivedAt.IsZero() {
			t.Errorf("event %s: source %q, trigger %q, received %v", ev.DeliveryID, ev.Source, ev.Trigger, ev.ReceivedAt)
		}
	}
	slices.Sort(ids)
	want := []string{"00fdef86-e930-cc2a-3bf7-1fd61ab3c89f", "7bf73129-1428-4cd3-a780-95db273d1602", "7bf73129-1428-4cd3-a780-95db273d1602"}
	if !slices.Equal(ids, want) {
		t.Errorf("delivery ids = %q, want %q", ids, want)
	}
	if n := b.events.started(); n != 2 {
		t.Errorf("%d runs started, want 2: the redelivery starts nothing new", n)
	}

	// The handled messages are gone; the one that is not an event stays for
	// the redrive policy, and comes back after the visibility timeout.
	if n := b.inQueue(t); n != 1 {
		t.Errorf("%d messages left in the queue, want 1", n)
	}
	out, err := b.client.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{
		QueueUrl:                    &b.url,
		WaitTimeSeconds:             5,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 || awssdk.ToString(out.Messages[0].Body) != "this is not an event" {
		t.Fatalf("received %d messages after the visibility timeout, want the one that is not an event", len(out.Messages))
	}
	if n, _ := strconv.Atoi(out.Messages[0].Attributes["ApproximateReceiveCount"]); n < 2 {
		t.Errorf("ApproximateReceiveCount = %d, want at least 2", n)
	}
}

func TestConsumerHandlerFails(t *testing.T) {
	t.Parallel()
	b := setupSQS(t, "switchboard-failing")
	b.send(t, string(sample(t, "ec2-state-change-terminated.json")))
	b.events.setFail(errDown)

	var handled int
	var err error
	for range 5 { // until moto hands out the message
		if handled, err = b.consumer.ReceiveOnce(t.Context()); err != nil {
			break
		}
	}
	if handled != 0 || !errors.Is(err, errDown) {
		t.Fatalf("ReceiveOnce = %d, %v; want 0 and the handler's error", handled, err)
	}
	if n := b.inQueue(t); n != 1 {
		t.Fatalf("%d messages in the queue after a failed handler, want 1", n)
	}

	// Once the handler works again the message comes back and is deleted.
	b.events.setFail(nil)
	if handled := b.receiveUntil(t, 1); handled != 1 {
		t.Errorf("handled %d, want 1", handled)
	}
	if n := b.inQueue(t); n != 0 {
		t.Errorf("%d messages in the queue after the handler took it, want 0", n)
	}
}

func TestConsumerRun(t *testing.T) {
	t.Parallel()
	b := setupSQS(t, "switchboard-run")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.consumer.Run(ctx) }()

	b.send(t, string(sample(t, "ec2-state-change-terminated.json")), string(sample(t, "health-maintenance-many.json")))
	deadline := time.Now().Add(30 * time.Second) // a bound on a hang, not on speed
	for len(b.events.received()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
	if n := len(b.events.received()); n != 2 {
		t.Fatalf("Run handed %d events to the handler, want 2", n)
	}
	if n := b.inQueue(t); n != 0 {
		t.Errorf("%d messages left in the queue, want 0", n)
	}
}

func TestConsumerRunStopsWhileFailing(t *testing.T) {
	t.Parallel()
	// Nothing listens on this endpoint: every round fails, Run backs off
	// instead of spinning, and still returns as soon as ctx is done.
	c, err := awsevents.NewConsumer(t.Context(), awsevents.Queue{
		URL: "http://127.0.0.1:1/123456789012/missing", Region: "us-east-1", Endpoint: "http://127.0.0.1:1",
		AccessKeyID: "testing", AccessKeySecret: "testing", WaitTime: time.Second,
	}, &fakeEvents{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReceiveOnce(t.Context()); err == nil {
		t.Fatal("ReceiveOnce from a closed port worked")
	}
	type report struct {
		err  error
		next time.Duration
	}
	reports := make(chan report, 10)
	c.ReportFunc = func(err error, next time.Duration) { reports <- report{err, next} }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// The first failure is reported with the pause before the next try:
	// half a second to a second.
	select {
	case r := <-reports:
		if r.err == nil || r.next < 500*time.Millisecond || r.next > time.Second {
			t.Errorf("report: %v, next try in %v; want the failure and 0.5s to 1s", r.err, r.next)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run reported nothing")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// A round that works is reported without error.
func TestConsumerRunReportsARoundThatWorks(t *testing.T) {
	t.Parallel()
	b := setupSQS(t, "reports")
	reports := make(chan error, 10)
	b.consumer.ReportFunc = func(err error, _ time.Duration) { reports <- err }
	b.send(t, string(sample(t, "ec2-state-change-terminated.json")))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.consumer.Run(ctx) }()
	select {
	case err := <-reports:
		if err != nil {
			t.Errorf("report of a round that worked: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run reported nothing")
	}
	cancel()
	<-done
}

func TestNewConsumerValidates(t *testing.T) {
	t.Parallel()
	good := awsevents.Queue{URL: "https://sqs.eu-west-1.amazonaws.com/123456789012/switchboard-events", AccessKeyID: "a", AccessKeySecret: "b"}
	tests := []struct {
		name  string
		edit  func(*awsevents.Queue)
		wants []string // in the error
	}{
		{"no url", func(q *awsevents.Queue) { q.URL = "" }, []string{"url is required", "region is required"}},
		{"not a url", func(q *awsevents.Queue) { q.URL = "switchboard-events"; q.Region = "us-east-1" }, []string{`url "switchboard-events" is not a queue URL`}},
		{"local url without region", func(q *awsevents.Queue) { q.URL = "http://127.0.0.1:5000/123456789012/q" }, []string{"region is required"}},
		{"bad endpoint", func(q *awsevents.Queue) { q.Endpoint = "127.0.0.1:5000" }, []string{"endpoint"}},
		{"half a key", func(q *awsevents.Queue) { q.AccessKeySecret = "" }, []string{"access_key_id and access_key_secret go together"}},
		{"external id alone", func(q *awsevents.Queue) { q.ExternalID = "x" }, []string{"external_id is set without"}},
		{"role not an ARN", func(q *awsevents.Queue) { q.RoleARN = "switchboard" }, []string{"role_arn"}},
		{"long wait", func(q *awsevents.Queue) { q.WaitTime = 30 * time.Second }, []string{"wait_time is 30s"}},
		{"negative wait", func(q *awsevents.Queue) { q.WaitTime = -time.Second }, []string{"wait_time is -1s"}},
		{"visibility", func(q *awsevents.Queue) { q.VisibilityTimeout = 13 * time.Hour }, []string{"visibility_timeout"}},
		{"max messages", func(q *awsevents.Queue) { q.MaxMessages = 11 }, []string{"max_messages is 11"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := good
			tt.edit(&q)
			_, err := awsevents.NewConsumer(t.Context(), q, &fakeEvents{}, nil)
			if err == nil {
				t.Fatal("NewConsumer accepted it")
			}
			for _, want := range tt.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}

	c, err := awsevents.NewConsumer(t.Context(), good, &fakeEvents{}, nil)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	if c.Name != "switchboard-events" || c.Region != "eu-west-1" || c.WaitTime != 20*time.Second || c.MaxMessages != 10 {
		t.Errorf("defaults: name %q, region %q, wait %s, max %d", c.Name, c.Region, c.WaitTime, c.MaxMessages)
	}
	if _, err := awsevents.NewConsumer(t.Context(), good, nil, nil); err == nil {
		t.Error("NewConsumer accepted a nil handler")
	}
}

var _ switchboard.EventHandler = (*fakeEvents)(nil)
