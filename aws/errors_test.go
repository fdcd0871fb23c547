package aws

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/switchboardhq/switchboard"
)

// apiError is an error as the SDK returns it for an EC2 error answer.
func apiError(status int, code, msg string) error {
	return operation(&awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: msg},
		},
		RequestID: "req-1",
	})
}

func operation(err error) error {
	return &smithy.OperationError{ServiceID: "EC2", OperationName: "StopInstances", Err: err}
}

func TestCloudError(t *testing.T) {
	t.Parallel()
	asked := []string{"i-0123456789abcdef0", "i-0fedcba9876543210"}
	tests := []struct {
		name     string
		err      error
		code     string
		kind     string
		ids      []string
		contains string
	}{
		{"throttled", apiError(503, "RequestLimitExceeded", "Request limit exceeded."), "RequestLimitExceeded", switchboard.ETHROTTLED, nil, ""},
		{"throttling", apiError(400, "Throttling", "Rate exceeded"), "Throttling", switchboard.ETHROTTLED, nil, ""},
		{"incorrect state names the instance", apiError(400, "IncorrectInstanceState",
			"The instance 'i-0fedcba9876543210' is not in a state from which it can be stopped."),
			"IncorrectInstanceState", switchboard.ECONFLICT, []string{"i-0fedcba9876543210"}, ""},
		{"incorrect state", apiError(400, "IncorrectState", "The volume is busy."), "IncorrectState", switchboard.ECONFLICT, nil, ""},
		{"one not found", apiError(400, "InvalidInstanceID.NotFound", "The instance ID 'i-0123456789abcdef0' does not exist"),
			"InvalidInstanceID.NotFound", switchboard.ENOTFOUND, []string{"i-0123456789abcdef0"}, ""},
		{"several not found", apiError(400, "InvalidInstanceID.NotFound",
			"The instance IDs 'i-0123456789abcdef0, i-0fedcba9876543210' do not exist"),
			"InvalidInstanceID.NotFound", switchboard.ENOTFOUND, asked, ""},
		{"not found, not asked", apiError(400, "InvalidInstanceID.NotFound", "The instance ID 'i-99999999' does not exist"),
			"InvalidInstanceID.NotFound", switchboard.ENOTFOUND, []string{"i-99999999"}, ""},
		{"malformed", apiError(400, "InvalidInstanceID.Malformed", `Invalid id: "web" (expecting "i-...")`),
			"InvalidInstanceID.Malformed", switchboard.EINVALID, nil, ""},
		{"tag call on a malformed id", apiError(400, "InvalidID", "The ID 'i-0fedcba9876543210' is not valid"),
			"InvalidID", switchboard.EINVALID, []string{"i-0fedcba9876543210"}, ""},
		{"unauthorized", apiError(403, "UnauthorizedOperation", "You are not authorized to perform this operation."),
			"UnauthorizedOperation", switchboard.EFORBIDDEN, nil, ""},
		{"auth failure", apiError(401, "AuthFailure", "AWS was not able to validate the provided access credentials"),
			"AuthFailure", switchboard.EFORBIDDEN, nil, ""},
		{"address not found", apiError(400, "InvalidAddress.NotFound", "Address '192.0.2.1' not found."),
			"InvalidAddress.NotFound", switchboard.ENOTFOUND, nil, ""},
		{"internal error keeps the ids", apiError(500, "InternalError", "An internal error has occurred"),
			"InternalError", switchboard.EUNAVAILABLE, asked, ""},
		{"unavailable", apiError(503, "Unavailable", "The server is overloaded"), "Unavailable", switchboard.EUNAVAILABLE, asked, ""},
		{"unknown 5xx code", apiError(502, "BadGateway", "upstream"), "BadGateway", switchboard.EUNAVAILABLE, asked, ""},
		{"idempotent mismatch", apiError(400, "IdempotentParameterMismatch", "token reused"),
			"IdempotentParameterMismatch", switchboard.EINVALID, nil, ""},
		{"other client error", apiError(400, "InvalidParameterValue", "Value (x) for parameter y is invalid."),
			"InvalidParameterValue", switchboard.EINVALID, nil, ""},
		{"unreadable 500", operation(&awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 500}},
			Err:      &smithy.DeserializationError{Err: errors.New("invalid XML")},
		}}), "HTTP500", switchboard.EUNAVAILABLE, asked, "HTTP 500"},
		{"connection refused", operation(&smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}),
			"ConnectionError", switchboard.EUNAVAILABLE, asked, "did not answer"},
		{"assume role refused", operation(&v4.SigningError{Err: fmt.Errorf("failed to retrieve credentials: %w",
			&smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRole", Err: &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to assume"}})}),
			"AccessDenied", switchboard.EFORBIDDEN, nil, "could not get AWS credentials"},
		{"role refused, as the SDK passes it on", operation(fmt.Errorf("get identity: get credentials: %w", &credentialsError{
			&smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRole", Err: &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to assume"}}})),
			"AccessDenied", switchboard.EFORBIDDEN, nil, "not authorized to assume"},
		{"no credentials", operation(&v4.SigningError{Err: errors.New("failed to retrieve credentials: no EC2 IMDS role found")}),
			"NoCredentials", switchboard.EFORBIDDEN, nil, "no EC2 IMDS role found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ce := cloudError(tt.err, asked, "EC2 in us-east-1")
			if ce.Code != tt.code || ce.Kind != tt.kind {
				t.Errorf("got %s/%s (%q), want %s/%s", ce.Code, ce.Kind, ce.Message, tt.code, tt.kind)
			}
			if !slices.Equal(ce.IDs, tt.ids) {
				t.Errorf("IDs %v, want %v", ce.IDs, tt.ids)
			}
			if tt.contains != "" && !strings.Contains(ce.Message, tt.contains) {
				t.Errorf("message %q, want it to mention %q", ce.Message, tt.contains)
			}
		})
	}
}

func TestIDsFromMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		msg   string
		asked []string
		want  []string
	}{
		{`Invalid id: "web" (expecting "i-...")`, []string{"web"}, []string{"web"}},
		{`Invalid id: "web" (expecting "i-...")`, nil, nil},
		{"The instance ID 'i-1a' does not exist", nil, []string{"i-1a"}},
		{"The instance IDs 'i-1a, i-2b' do not exist", []string{"i-2b", "i-1a", "i-3c"}, []string{"i-1a", "i-2b"}},
		{"nothing quoted", []string{"i-1a"}, nil},
	}
	for _, tt := range tests {
		if got := idsFromMessage(tt.msg, tt.asked); !slices.Equal(got, tt.want) {
			t.Errorf("idsFromMessage(%q, %v) = %v, want %v", tt.msg, tt.asked, got, tt.want)
		}
	}
}
