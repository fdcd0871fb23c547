package alibaba

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"github.com/switchboardhq/switchboard"
)

// failure turns what the SDK returned for one ECS call into the domain's
// errors: an answer from ECS becomes a *switchboard.CloudError with ECS's
// code; a call that never got an answer is EUNAVAILABLE; a cancelled call
// keeps ctx's error so callers see context.Canceled.
func (p *Provider) failure(ctx context.Context, action string, err error, ids []string) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("alibaba %s: %w", action, cerr)
	}
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		return serverError(se, ids)
	}
	var ce *sdkerrors.ClientError
	if errors.As(err, &ce) {
		switch ce.ErrorCode() {
		case sdkerrors.TimeoutErrorCode, sdkerrors.JsonUnmarshalErrorCode:
			// A timeout, or an answer that was not ECS's JSON (a proxy's
			// error page): worth a retry.
		default:
			return fmt.Errorf("alibaba %s: %w", action, err)
		}
	}
	return fmt.Errorf("alibaba %s: %v: %w", action, err, switchboard.Errorf(switchboard.EUNAVAILABLE,
		"Alibaba Cloud ECS (%s) did not answer; the call will be retried.", p.endpointName()))
}

func (p *Provider) endpointName() string {
	if p.domain != "" {
		return p.domain
	}
	return "region " + p.region
}

// serverError is an ECS error answer as a CloudError.
func serverError(se *sdkerrors.ServerError, ids []string) *switchboard.CloudError {
	code, message := se.ErrorCode(), se.Message()
	if code == "" {
		// Not ECS's JSON error body: a gateway's answer.
		code = "HTTP" + strconv.Itoa(se.HttpStatus())
		message = firstLine(message, http.StatusText(se.HttpStatus()))
	}
	return &switchboard.CloudError{
		Code:       code,
		Message:    message,
		Kind:       kind(code, se.HttpStatus()),
		IDs:        ids,
		RetryAfter: retryAfter(se.RespHeaders),
	}
}

// instanceError is one instance's failure in a batch call's
// InstanceResponses.
func instanceError(id, code, message string) *switchboard.CloudError {
	return &switchboard.CloudError{Code: code, Message: message, Kind: kind(code, 0), IDs: []string{id}}
}

// kind sorts an ECS error code (and, failing that, its HTTP status) into the
// domain's error codes.
func kind(code string, status int) string {
	switch {
	case strings.HasPrefix(code, "Throttling"), code == "RequestLimitExceeded":
		return switchboard.ETHROTTLED
	case code == "ServiceUnavailable", code == "InternalError", code == "UnknownError",
		strings.HasPrefix(code, "ServiceUnavailable."), strings.HasPrefix(code, "InternalError."):
		return switchboard.EUNAVAILABLE
	case strings.HasPrefix(code, "Forbidden"), code == "NoPermission", strings.HasPrefix(code, "NoPermission."),
		strings.HasPrefix(code, "InvalidAccessKeyId"), code == "SignatureDoesNotMatch",
		strings.HasPrefix(code, "InvalidSecurityToken"), code == "UnauthorizedOperation":
		return switchboard.EFORBIDDEN
	case strings.HasPrefix(code, "IncorrectInstanceStatus"), strings.HasPrefix(code, "Incorrect"),
		code == "InstanceLockedForSecurity", code == "OperationConflict", strings.HasPrefix(code, "OperationConflict."),
		code == "LastTokenProcessing", code == "IdempotentProcessing":
		return switchboard.ECONFLICT
	case strings.HasPrefix(code, "InvalidRegionId"):
		return switchboard.EINVALID
	case strings.HasSuffix(code, ".NotFound"), strings.HasSuffix(code, "NotFound"):
		return switchboard.ENOTFOUND
	case strings.HasPrefix(code, "InvalidParameter"), strings.HasPrefix(code, "MissingParameter"),
		strings.HasPrefix(code, "Invalid"), strings.HasPrefix(code, "Missing"),
		code == "IdempotentParameterMismatch", strings.HasPrefix(code, "UnsupportedParameter"):
		return switchboard.EINVALID
	}
	switch {
	case status == http.StatusTooManyRequests:
		return switchboard.ETHROTTLED
	case status >= 500:
		return switchboard.EUNAVAILABLE
	case status == http.StatusNotFound:
		return switchboard.ENOTFOUND
	case status == http.StatusForbidden, status == http.StatusUnauthorized:
		return switchboard.EFORBIDDEN
	case status >= 400:
		return switchboard.EINVALID
	}
	return ""
}

// retryAfter reads a Retry-After header in seconds. ECS does not document
// one, but a gateway in front of it may send it.
func retryAfter(headers map[string][]string) time.Duration {
	for k, vs := range headers {
		if !strings.EqualFold(k, "Retry-After") || len(vs) == 0 {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(vs[0])); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return 0
}

func firstLine(s, fallback string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return fallback
	}
	return s
}

// isDryRunPass reports whether err is ECS's answer to a dry run that would
// have been allowed.
func isDryRunPass(err error) bool {
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		return false
	}
	switch se.ErrorCode() {
	case "DryRunOperation", "DRYRUN.SUCCESS":
		return true
	}
	return false
}
