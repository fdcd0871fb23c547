package aws

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"

	"github.com/switchboardhq/switchboard"
)

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
		want string // a part of the error; "" means valid
	}{
		{"region only", Options{Region: "eu-west-1"}, ""},
		{"everything", Options{Region: "eu-west-1", Endpoint: "http://127.0.0.1:5000", Profile: "ops",
			RoleARN: "arn:aws:iam::123456789012:role/switchboard", ExternalID: "x", AccessKeyID: "AKIA", AccessKeySecret: "s"}, ""},
		{"no region", Options{}, "region is required"},
		// The shared loader's checks (awsconfig.Options.Check, tested there)
		// are part of Validate.
		{"endpoint without scheme", Options{Region: "eu-west-1", Endpoint: "127.0.0.1:5000"}, `aws: endpoint "127.0.0.1:5000" is not an http(s) URL`},
		{"role that is no ARN", Options{Region: "eu-west-1", RoleARN: "switchboard"}, "aws: assume_role.role_arn \"switchboard\" is not an ARN"},
		{"negative attempts", Options{Region: "eu-west-1", RetryMaxAttempts: -1}, "RetryMaxAttempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.opts.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := New(t.Context(), Options{}); err == nil || !strings.Contains(err.Error(), "region") {
		t.Errorf("New without a region = %v, want an error naming region", err)
	}
}

func TestRunInput(t *testing.T) {
	t.Parallel()
	in := runInput(switchboard.LaunchSpec{
		ImageID:        "ami-0123456789abcdef0",
		SubnetID:       "subnet-1",
		SecurityGroups: []string{"sg-0a", "web"},
		KeyName:        "deploy",
		UserData:       "#!/bin/sh\necho hi\n",
		Tags:           map[string]string{"Name": "feature-login", "branch": "feature/login"},
		ClientToken:    "run-1-step-2",
	})
	if awssdk.ToInt32(in.MinCount) != 1 || awssdk.ToInt32(in.MaxCount) != 1 {
		t.Errorf("count %d..%d, want 1..1", awssdk.ToInt32(in.MinCount), awssdk.ToInt32(in.MaxCount))
	}
	if in.InstanceType != "t3.micro" || awssdk.ToString(in.SubnetId) != "subnet-1" || awssdk.ToString(in.KeyName) != "deploy" {
		t.Errorf("type %s subnet %s key %s", in.InstanceType, awssdk.ToString(in.SubnetId), awssdk.ToString(in.KeyName))
	}
	if !slices.Equal(in.SecurityGroupIds, []string{"sg-0a"}) || !slices.Equal(in.SecurityGroups, []string{"web"}) {
		t.Errorf("security groups by id %v, by name %v", in.SecurityGroupIds, in.SecurityGroups)
	}
	if got, _ := base64Decode(awssdk.ToString(in.UserData)); got != "#!/bin/sh\necho hi\n" {
		t.Errorf("user data decodes to %q", got)
	}
	if awssdk.ToString(in.ClientToken) != "run-1-step-2" {
		t.Errorf("client token %q", awssdk.ToString(in.ClientToken))
	}
	if len(in.TagSpecifications) != 1 || in.TagSpecifications[0].ResourceType != "instance" {
		t.Fatalf("tag specifications %+v, want one for the instance", in.TagSpecifications)
	}
	var keys []string
	for _, tag := range in.TagSpecifications[0].Tags {
		keys = append(keys, awssdk.ToString(tag.Key))
	}
	if want := []string{"Name", "branch", ClientTokenTag}; !slices.Equal(keys, want) {
		t.Errorf("tag keys %v, want %v", keys, want)
	}

	in = runInput(switchboard.LaunchSpec{ImageID: "ami-0123456789abcdef0", Count: 3, Type: "m7g.large"})
	if awssdk.ToInt32(in.MinCount) != 3 || awssdk.ToInt32(in.MaxCount) != 3 || in.InstanceType != "m7g.large" {
		t.Errorf("count %d..%d type %s, want 3..3 m7g.large", awssdk.ToInt32(in.MinCount), awssdk.ToInt32(in.MaxCount), in.InstanceType)
	}
	if in.TagSpecifications != nil || in.UserData != nil || in.ClientToken != nil {
		t.Errorf("a bare spec sent tags %v, user data %v, token %v", in.TagSpecifications, in.UserData, in.ClientToken)
	}
}

// ec2Answer serves EC2's XML error answer and counts the attempts.
func ec2Answer(t *testing.T, status int, code string) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>` + code +
			`</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r-1</RequestID></Response>`))
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestThrottlingIsRetriedAtMostTwice(t *testing.T) {
	t.Parallel()
	srv, calls := ec2Answer(t, http.StatusServiceUnavailable, "RequestLimitExceeded")
	p, err := New(t.Context(), Options{Region: "us-east-1", Endpoint: srv.URL, AccessKeyID: "testing", AccessKeySecret: "testing"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.StartInstances(t.Context(), []string{"i-0123456789abcdef0"})
	assertCloudError(t, err, "RequestLimitExceeded", switchboard.ETHROTTLED, nil)
	if n := calls.Load(); n != DefaultRetryMaxAttempts {
		t.Errorf("the SDK made %d attempts, want %d", n, DefaultRetryMaxAttempts)
	}
}

func TestRetryMaxAttemptsOne(t *testing.T) {
	t.Parallel()
	srv, calls := ec2Answer(t, http.StatusInternalServerError, "InternalError")
	p, err := New(t.Context(), Options{Region: "us-east-1", Endpoint: srv.URL, AccessKeyID: "testing", AccessKeySecret: "testing", RetryMaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	err = p.RebootInstances(t.Context(), []string{"i-0123456789abcdef0"})
	assertCloudError(t, err, "InternalError", switchboard.EUNAVAILABLE, []string{"i-0123456789abcdef0"})
	if n := calls.Load(); n != 1 {
		t.Errorf("the SDK made %d attempts, want 1", n)
	}
}

func TestNoAnswer(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	p, err := New(t.Context(), Options{Region: "us-east-1", Endpoint: closed, AccessKeyID: "testing", AccessKeySecret: "testing", RetryMaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.DescribeInstances(t.Context(), switchboard.Filter{})
	assertCloudError(t, err, "ConnectionError", switchboard.EUNAVAILABLE, nil)
}

func TestAssumeRoleWithoutAnswer(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	p, err := New(t.Context(), Options{Region: "us-east-1", Endpoint: closed, AccessKeyID: "testing", AccessKeySecret: "testing",
		RoleARN: "arn:aws:iam::123456789012:role/switchboard", RetryMaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.DescribeInstances(t.Context(), switchboard.Filter{})
	assertCloudError(t, err, "ConnectionError", switchboard.EUNAVAILABLE, nil)
	if !strings.Contains(switchboard.ErrorMessage(err), "could not get AWS credentials") {
		t.Errorf("message %q, want it to say the credentials are the problem", switchboard.ErrorMessage(err))
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	srv, _ := ec2Answer(t, http.StatusInternalServerError, "InternalError")
	p, err := New(t.Context(), Options{Region: "us-east-1", Endpoint: srv.URL, AccessKeyID: "testing", AccessKeySecret: "testing"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = p.DescribeInstances(ctx, switchboard.Filter{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("DescribeInstances with a canceled context = %v, want context.Canceled", err)
	}
}

func TestLocalRefusals(t *testing.T) {
	t.Parallel()
	// These fail before any request, so the endpoint is never dialled.
	p, err := New(t.Context(), Options{Region: "us-east-1", Endpoint: (&url.URL{Scheme: "http", Host: "127.0.0.1:9"}).String(),
		AccessKeyID: "testing", AccessKeySecret: "testing"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	_, err = p.StartInstances(ctx, nil)
	assertCloudError(t, err, "MissingParameter", switchboard.EINVALID, nil)
	_, err = p.StopInstances(ctx, nil, switchboard.StopOptions{})
	assertCloudError(t, err, "MissingParameter", switchboard.EINVALID, nil)
	_, err = p.TerminateInstances(ctx, nil)
	assertCloudError(t, err, "MissingParameter", switchboard.EINVALID, nil)
	assertCloudError(t, p.RebootInstances(ctx, nil), "MissingParameter", switchboard.EINVALID, nil)
	assertCloudError(t, p.AssociateAddress(ctx, "", "192.0.2.1"), "MissingParameter", switchboard.EINVALID, nil)
	assertCloudError(t, p.DryRun(ctx, "resize", []string{"i-0123456789abcdef0"}), "InvalidParameterValue", switchboard.EINVALID, nil)
	_, err = p.RunInstances(ctx, switchboard.LaunchSpec{})
	assertCloudError(t, err, "MissingParameter", switchboard.EINVALID, nil)
	_, err = p.RunInstances(ctx, switchboard.LaunchSpec{ImageID: "ami-0123456789abcdef0", ClientToken: strings.Repeat("x", 65)})
	assertCloudError(t, err, "InvalidParameterValue", switchboard.EINVALID, nil)
	assertCloudError(t, p.TagInstances(ctx, nil, map[string]string{"pin": "x"}), "MissingParameter", switchboard.EINVALID, nil)
	assertCloudError(t, p.TagInstances(ctx, []string{"i-0123456789abcdef0"}, nil), "MissingParameter", switchboard.EINVALID, nil)
	assertCloudError(t, p.UntagInstances(ctx, nil, []string{"pin"}), "MissingParameter", switchboard.EINVALID, nil)
	// A DeleteTags without keys would remove every tag.
	assertCloudError(t, p.UntagInstances(ctx, []string{"i-0123456789abcdef0"}, nil), "MissingParameter", switchboard.EINVALID, nil)
}

// TestTagCalls checks what CreateTags and DeleteTags send, which moto reads
// too leniently to show, and how EC2's answer to an unknown id comes back.
func TestTagCalls(t *testing.T) {
	t.Parallel()
	const known, unknown = "i-0123456789abcdef0", "i-0fedcba9876543210"
	forms := make(chan url.Values, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("ParseForm: %v", err)
		}
		forms <- r.PostForm
		w.Header().Set("Content-Type", "text/xml")
		if slices.Contains(r.PostForm["ResourceId.2"], unknown) {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>` +
				`<Message>The instance ID '` + unknown + `' does not exist</Message></Error></Errors><RequestID>r-1</RequestID></Response>`))
			return
		}
		action := r.PostForm.Get("Action")
		w.Write([]byte(`<` + action + `Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-1</requestId><return>true</return></` + action + `Response>`))
	}))
	t.Cleanup(srv.Close)
	p, err := New(t.Context(), Options{Region: "us-east-1", Endpoint: srv.URL, AccessKeyID: "testing", AccessKeySecret: "testing", RetryMaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	if err := p.TagInstances(ctx, []string{known}, map[string]string{"pin": "", "expiry": "friday"}); err != nil {
		t.Fatalf("TagInstances: %v", err)
	}
	form := <-forms
	want := url.Values{"ResourceId.1": {known}, "Tag.1.Key": {"expiry"}, "Tag.1.Value": {"friday"}, "Tag.2.Key": {"pin"}, "Tag.2.Value": {""}}
	for k, v := range want {
		if !slices.Equal(form[k], v) {
			t.Errorf("CreateTags sent %s=%q, want %q (all: %v)", k, form[k], v, form)
		}
	}
	if form.Get("Action") != "CreateTags" {
		t.Errorf("Action %q, want CreateTags", form.Get("Action"))
	}

	// Keys go without values, so EC2 removes them whatever their values.
	if err := p.UntagInstances(ctx, []string{known}, []string{"pin", "expiry", "pin"}); err != nil {
		t.Fatalf("UntagInstances: %v", err)
	}
	form = <-forms
	want = url.Values{"Action": {"DeleteTags"}, "ResourceId.1": {known}, "Tag.1.Key": {"expiry"}, "Tag.2.Key": {"pin"}}
	for k, v := range want {
		if !slices.Equal(form[k], v) {
			t.Errorf("DeleteTags sent %s=%q, want %q (all: %v)", k, form[k], v, form)
		}
	}
	for k := range form {
		if strings.HasSuffix(k, ".Value") || k == "Tag.3.Key" {
			t.Errorf("DeleteTags sent %s: want each key once, without a value", k)
		}
	}

	err = p.TagInstances(ctx, []string{known, unknown}, map[string]string{"pin": "x"})
	assertCloudError(t, err, "InvalidInstanceID.NotFound", switchboard.ENOTFOUND, []string{unknown})
	<-forms
	err = p.UntagInstances(ctx, []string{known, unknown}, []string{"pin"})
	assertCloudError(t, err, "InvalidInstanceID.NotFound", switchboard.ENOTFOUND, []string{unknown})
	<-forms
}
