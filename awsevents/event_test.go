package awsevents_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/awsevents"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file      string
		id        string
		kind      string
		from      string
		subject   string
		time      string
		state     string
		instances []string
		body      string // a prefix of Body
	}{
		{
			file:      "ec2-state-change-terminated.json",
			id:        "7bf73129-1428-4cd3-a780-95db273d1602",
			kind:      awsevents.KindStateChange,
			from:      "aws.ec2",
			subject:   "i-1234567890abcdef0 is now terminated",
			time:      "2021-11-11T21:29:54Z",
			state:     "terminated",
			instances: []string{"i-1234567890abcdef0"},
		},
		{
			file:      "ec2-state-change-pending.json",
			id:        "cbdd5653-b2b9-8c4e-c7de-bd6a0e879c9a",
			kind:      awsevents.KindStateChange,
			from:      "aws.ec2",
			subject:   "i-abcd1111 is now pending",
			time:      "2017-10-29T23:07:54Z",
			state:     "pending",
			instances: []string{"i-abcd1111"},
		},
		{
			// SNS to SQS without raw message delivery: the event is the
			// notification's Message.
			file:      "sns-wrapped-state-change.json",
			id:        "7bf73129-1428-4cd3-a780-95db273d1602",
			kind:      awsevents.KindStateChange,
			from:      "aws.ec2",
			subject:   "i-1234567890abcdef0 is now terminated",
			time:      "2021-11-11T21:29:54Z",
			state:     "terminated",
			instances: []string{"i-1234567890abcdef0"},
		},
		{
			file:      "health-instance-retirement.json",
			id:        "00fdef86-e930-cc2a-3bf7-1fd61ab3c89f",
			kind:      awsevents.KindHealth,
			from:      "aws.health",
			subject:   "EC2: AWS_EC2_PERSISTENT_INSTANCE_RETIREMENT_SCHEDULED for i-0c608386538544571",
			time:      "2023-01-27T01:43:21Z",
			instances: []string{"i-0c608386538544571"},
			body:      "EC2 has detected degradation of the underlying hardware",
		},
		{
			// The volume among the affected entities is not an instance.
			file:      "health-maintenance-many.json",
			id:        "9e1f5a0c-7c0b-4b5e-8d1f-2f4b5c6d7e8f",
			kind:      awsevents.KindHealth,
			from:      "aws.health",
			subject:   "EC2: AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED for i-0a1b2c3d4e5f60718, i-0a1b2c3d4e5f60719, i-0a1b2c3d4e5f6071a and 1 more",
			time:      "2024-03-04T09:15:00Z",
			instances: []string{"i-0a1b2c3d4e5f60718", "i-0a1b2c3d4e5f60719", "i-0a1b2c3d4e5f6071a", "i-0a1b2c3d4e5f6071b"},
			body:      "One or more of your Amazon EC2 instances",
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			ev, err := awsevents.Parse(sample(t, tt.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want, _ := time.Parse(time.RFC3339, tt.time)
			if ev.Source != "aws" || ev.DeliveryID != tt.id || ev.Kind != tt.kind || ev.From != tt.from ||
				ev.Subject != tt.subject || !ev.ReceivedAt.Equal(want) || ev.Trigger != "" {
				t.Errorf("Parse = source %q, id %q, kind %q, from %q, subject %q, time %v, trigger %q;\nwant aws, %q, %q, %q, %q, %v, \"\"",
					ev.Source, ev.DeliveryID, ev.Kind, ev.From, ev.Subject, ev.ReceivedAt, ev.Trigger, tt.id, tt.kind, tt.from, tt.subject, want)
			}
			if !strings.HasPrefix(ev.Body, tt.body) || (tt.body == "") != (ev.Body == "") {
				t.Errorf("Body = %q, want it to start with %q", ev.Body, tt.body)
			}
			var data map[string]any
			if err := json.Unmarshal(ev.Data, &data); err != nil || data["id"] != tt.id {
				t.Errorf("Data is not the event itself (id %v, err %v): %s", data["id"], err, ev.Data)
			}
			if got := awsevents.State(ev); got != tt.state {
				t.Errorf("State = %q, want %q", got, tt.state)
			}
			if got := awsevents.InstanceIDs(ev); !slices.Equal(got, tt.instances) {
				t.Errorf("InstanceIDs = %q, want %q", got, tt.instances)
			}
		})
	}
}

func TestParseOtherEvent(t *testing.T) {
	t.Parallel()
	// An event Switchboard has no summary for is still an event: a rule may
	// route any detail type to a workflow.
	body := `{"version":"0","id":"a1","detail-type":"EC2 Spot Instance Interruption Warning","source":"aws.ec2",
		"account":"123456789012","time":"2024-01-02T03:04:05Z","region":"us-east-1",
		"resources":["arn:aws:ec2:us-east-1b:instance/i-1234567890abcdef0"],
		"detail":{"instance-id":"i-1234567890abcdef0","instance-action":"terminate"}}`
	ev, err := awsevents.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Subject != "EC2 Spot Instance Interruption Warning from aws.ec2" {
		t.Errorf("Subject = %q", ev.Subject)
	}
	if got := awsevents.State(ev); got != "" {
		t.Errorf("State = %q for an event that is no state change", got)
	}
	if got := awsevents.InstanceIDs(ev); !slices.Equal(got, []string{"i-1234567890abcdef0"}) {
		t.Errorf("InstanceIDs = %q", got)
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want string // in the message
	}{
		{"empty", "  \n", "The body is empty"},
		{"not JSON", "hello, world", "not valid JSON"},
		{"truncated", `{"id":"x","detail-type":`, "not valid JSON"},
		{"array", `[{"id":"x"}]`, "not an object"},
		{"string", `"an event"`, "not an object"},
		{"other JSON", `{"hello":"world"}`, `it has no "id", "detail-type", "source", "detail" object`},
		{"no detail", `{"id":"x","detail-type":"T","source":"s"}`, `it has no "detail" object`},
		{"detail not an object", `{"id":"x","detail-type":"T","source":"s","detail":"terminated"}`, `"detail" object`},
		{"wrong type", `{"id":"x","detail-type":"T","source":"s","detail":{},"resources":"i-1234abcd"}`, `its "resources" is a JSON string`},
		{"long id", `{"id":"` + strings.Repeat("x", 300) + `","detail-type":"T","source":"s","detail":{}}`, "300 characters"},
		{"SNS confirmation", `{"Type":"SubscriptionConfirmation","TopicArn":"arn:aws:sns:us-east-1:123456789012:t","Message":"You have chosen to subscribe"}`, "SNS SubscriptionConfirmation message"},
		{"SNS with text", `{"Type":"Notification","TopicArn":"arn:aws:sns:us-east-1:123456789012:t","Message":"instance died"}`, "Message is not a JSON object"},
		{"SNS with other JSON", `{"Type":"Notification","Message":"{\"hello\":1}"}`, "The SNS notification's Message is not an EventBridge event: it has no"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := awsevents.Parse([]byte(tt.body))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			if code := switchboard.ErrorCode(err); code != switchboard.EINVALID {
				t.Errorf("code = %s, want %s", code, switchboard.EINVALID)
			}
			msg := switchboard.ErrorMessage(err)
			if !strings.Contains(msg, tt.want) || !strings.HasSuffix(msg, ".") {
				t.Errorf("message = %q, want a sentence containing %q", msg, tt.want)
			}
		})
	}
}

func TestParseOneLineSubject(t *testing.T) {
	t.Parallel()
	body := `{"id":"x","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{"instance-id":"i-1234abcd","state":"stopped\n\nrm -rf /` + strings.Repeat("z", 300) + `"}}`
	ev, err := awsevents.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(ev.Subject, "\r\n") || len([]rune(ev.Subject)) > 200 {
		t.Errorf("Subject is not one short line: %q", ev.Subject)
	}
	if !ev.ReceivedAt.IsZero() {
		t.Errorf("ReceivedAt = %v for an event without time, want zero", ev.ReceivedAt)
	}
}

func TestInstanceIDsWithoutData(t *testing.T) {
	t.Parallel()
	for _, ev := range []switchboard.Event{{}, {Data: json.RawMessage(`{"detail":[1]}`)}, {Data: json.RawMessage(`not json`)}} {
		if got := awsevents.InstanceIDs(ev); got != nil {
			t.Errorf("InstanceIDs(%s) = %q, want nil", ev.Data, got)
		}
		if got := awsevents.State(ev); got != "" {
			t.Errorf("State(%s) = %q, want empty", ev.Data, got)
		}
	}
}

// FuzzParse checks that Parse never panics, and that what it accepts is an
// event that parses again to the same delivery, with a one-line subject.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"Type":"Notification","Message":"{\"id\":\"1\",\"detail-type\":\"AWS Health Event\",\"source\":\"aws.health\",\"detail\":{\"eventTypeCode\":\"X\",\"affectedEntities\":[{\"entityValue\":\"i-1234abcd\"}]}}"}`))
	f.Add([]byte(`{"id":"1","detail-type":"t","source":"s","detail":{},"resources":["arn:aws:ec2:r:a:instance/i-1234abcd"]}`))
	f.Add([]byte(`garbage`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := awsevents.Parse(body)
		if err != nil {
			if switchboard.ErrorCode(err) != switchboard.EINVALID {
				t.Fatalf("error %v has code %s, want %s", err, switchboard.ErrorCode(err), switchboard.EINVALID)
			}
			return
		}
		if ev.Source != "aws" || ev.DeliveryID == "" || ev.Kind == "" {
			t.Fatalf("accepted event lacks source, id or kind: %+v", ev)
		}
		if strings.ContainsAny(ev.Subject, "\r\n") || len([]rune(ev.Subject)) > 200 {
			t.Fatalf("Subject is not one short line: %q", ev.Subject)
		}
		again, err := awsevents.Parse(ev.Data)
		if err != nil {
			t.Fatalf("Data does not parse again: %v", err)
		}
		if again.DeliveryID != ev.DeliveryID || again.Subject != ev.Subject {
			t.Fatalf("Data parses to %q %q, want %q %q", again.DeliveryID, again.Subject, ev.DeliveryID, ev.Subject)
		}
		for _, id := range awsevents.InstanceIDs(ev) {
			if !strings.HasPrefix(id, "i-") {
				t.Fatalf("InstanceIDs returned %q", id)
			}
		}
		_ = awsevents.State(ev)
	})
}
