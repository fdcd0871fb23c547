package aws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/switchboardhq/switchboard"
)

// kinds maps EC2's error codes to the domain's error codes. A code not listed
// is EINVALID: EC2 says most of its client errors in Invalid* codes, and
// those are not worth a retry.
var kinds = map[string]string{
	"RequestLimitExceeded":         switchboard.ETHROTTLED,
	"Throttling":                   switchboard.ETHROTTLED,
	"ThrottlingException":          switchboard.ETHROTTLED,
	"EC2ThrottledException":        switchboard.ETHROTTLED,
	"IncorrectInstanceState":       switchboard.ECONFLICT,
	"IncorrectState":               switchboard.ECONFLICT,
	"InvalidInstanceID.NotFound":   switchboard.ENOTFOUND,
	"InvalidInstanceID.Malformed":  switchboard.EINVALID,
	"InvalidID":                    switchboard.EINVALID, // CreateTags and DeleteTags on a malformed id
	"InvalidAddress.NotFound":      switchboard.ENOTFOUND,
	"InvalidAllocationID.NotFound": switchboard.ENOTFOUND,
	"UnauthorizedOperation":        switchboard.EFORBIDDEN,
	"AuthFailure":                  switchboard.EFORBIDDEN,
	"AccessDenied":                 switchboard.EFORBIDDEN,
	"OptInRequired":                switchboard.EFORBIDDEN,
	"InternalError":                switchboard.EUNAVAILABLE,
	"InternalFailure":              switchboard.EUNAVAILABLE,
	"Unavailable":                  switchboard.EUNAVAILABLE,
	"ServiceUnavailable":           switchboard.EUNAVAILABLE,
	"RequestTimeout":               switchboard.EUNAVAILABLE,
	// The simulated cloud calls a reused token with another spec EINVALID:
	// retrying the same request cannot help, the caller must change it.
	"IdempotentParameterMismatch": switchboard.EINVALID,
}

// withIDs are the codes whose messages name the instances at fault.
var withIDs = map[string]bool{
	"InvalidInstanceID.NotFound":  true,
	"InvalidInstanceID.Malformed": true,
	"InvalidID":                   true,
	"IncorrectInstanceState":      true,
	"IncorrectState":              true,
}

// fail turns what an EC2 call returned into the error the domain expects: a
// *switchboard.CloudError for anything EC2 (or the way to it) said, the
// context's error when the caller gave up. ids are the instances the call
// named, kept on errors that concern them all.
func (p *Provider) fail(ctx context.Context, call string, ids []string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("aws %s: %w", call, ctxErr)
	}
	return cloudError(err, ids, p.describeEndpoint())
}

func (p *Provider) describeEndpoint() string {
	if p.endpoint != "" {
		return p.endpoint
	}
	return "EC2 in " + p.region
}

// cloudError maps err onto a CloudError. where names the endpoint for errors
// that never got an answer.
func cloudError(err error, ids []string, where string) *switchboard.CloudError {
	// An error getting credentials is about credentials, whatever an STS
	// error inside it says, so it goes first.
	var credErr *credentialsError
	var sign *v4.SigningError
	if errors.As(err, &credErr) || errors.As(err, &sign) {
		cause := error(sign)
		if credErr != nil {
			cause = credErr.err
		}
		ce := &switchboard.CloudError{
			Code:    "NoCredentials",
			Message: fmt.Sprintf("Switchboard could not get AWS credentials for %s: %v", where, cause),
			Kind:    switchboard.EFORBIDDEN,
		}
		var api smithy.APIError
		if errors.As(err, &api) {
			ce.Code = api.ErrorCode()
		} else if unreachable(err) {
			// STS did not answer: worth a retry, unlike a refusal.
			ce.Code, ce.Kind = "ConnectionError", switchboard.EUNAVAILABLE
		}
		return ce
	}

	var api smithy.APIError
	if errors.As(err, &api) {
		code := api.ErrorCode()
		ce := &switchboard.CloudError{Code: code, Message: api.ErrorMessage(), Kind: kinds[code]}
		if ce.Kind == "" {
			ce.Kind = switchboard.EINVALID
			if httpStatus(err) >= 500 {
				ce.Kind = switchboard.EUNAVAILABLE
			}
		}
		switch {
		case withIDs[code]:
			ce.IDs = idsFromMessage(ce.Message, ids)
		case ce.Kind == switchboard.EUNAVAILABLE:
			ce.IDs = slices.Clone(ids)
		}
		return ce
	}

	// No API error: either an answer the SDK could not read (moto's HTML 500
	// page, a proxy's error), or no answer at all.
	if status := httpStatus(err); status != 0 {
		kind := switchboard.EINVALID
		if status >= 500 || status == 429 {
			kind = switchboard.EUNAVAILABLE
		}
		return &switchboard.CloudError{
			Code:    fmt.Sprintf("HTTP%d", status),
			Message: fmt.Sprintf("%s answered HTTP %d: %v", where, status, err),
			Kind:    kind,
			IDs:     slices.Clone(ids),
		}
	}
	if unreachable(err) {
		return &switchboard.CloudError{
			Code:    "ConnectionError",
			Message: fmt.Sprintf("%s did not answer: %v", where, err),
			Kind:    switchboard.EUNAVAILABLE,
			IDs:     slices.Clone(ids),
		}
	}
	return &switchboard.CloudError{
		Code:    "ClientError",
		Message: fmt.Sprintf("the call to %s failed before it was sent: %v", where, err),
		Kind:    switchboard.EINVALID,
	}
}

// unreachable reports whether err is a request that got no answer.
func unreachable(err error) bool {
	var send *smithyhttp.RequestSendError
	var netErr net.Error
	return errors.As(err, &send) || errors.As(err, &netErr)
}

func httpStatus(err error) int {
	var r interface{ HTTPStatusCode() int }
	if errors.As(err, &r) {
		return r.HTTPStatusCode()
	}
	return 0
}

// quoted finds the quoted parts of EC2's messages: 'i-1, i-2' in "The
// instance IDs 'i-1, i-2' do not exist" and "foo" in `Invalid id: "foo"`.
var quoted = regexp.MustCompile(`'([^']*)'|"([^"]*)"`)

var instanceID = regexp.MustCompile(`^i-[0-9a-zA-Z]+$`)

// idsFromMessage returns the instance ids msg names: those of asked that it
// quotes, or, when it quotes none of them, whatever in it looks like an
// instance id. nil when it names none.
func idsFromMessage(msg string, asked []string) []string {
	var named, like []string
	for _, m := range quoted.FindAllStringSubmatch(msg, -1) {
		for s := range strings.SplitSeq(m[1]+m[2], ",") {
			s = strings.TrimSpace(s)
			switch {
			case s == "":
			case slices.Contains(asked, s):
				if !slices.Contains(named, s) {
					named = append(named, s)
				}
			case instanceID.MatchString(s):
				if !slices.Contains(like, s) {
					like = append(like, s)
				}
			}
		}
	}
	if len(named) > 0 {
		return named
	}
	return like
}

// isDryRunOK reports whether err is EC2's answer to a dry run that would
// have worked.
func isDryRunOK(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "DryRunOperation"
}

// The errors below are answered without asking EC2, in the simulated cloud's
// words, for requests EC2 would refuse anyway.
