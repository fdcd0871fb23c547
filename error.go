package switchboard

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Error codes. Each maps to one HTTP status (see the web and slack packages)
// and to how a chat user is told about it.
const (
	ECONFLICT     = "conflict"     // the target is busy or in the wrong state
	EINTERNAL     = "internal"     // a bug or an unexpected failure
	EINVALID      = "invalid"      // the input is wrong; the message says what would work
	ENOTFOUND     = "not_found"    // no such instance, run or approval
	EUNAUTHORIZED = "unauthorized" // the caller could not be verified
	EFORBIDDEN    = "forbidden"    // the caller is known but not allowed
	ETHROTTLED    = "throttled"    // a rate limit said no; retry later
	EUNAVAILABLE  = "unavailable"  // a dependency did not answer; retry later
	ETOOLARGE     = "too_large"    // the request body is over the limit
)

// Error is an error meant for the people using Switchboard: Message is a
// sentence they can act on. Anything else that reaches a user is reported as
// an internal error, and its text stays in the log.
type Error struct {
	Code    string
	Message string
	// RetryAfter is set on ETHROTTLED when the peer said how long to wait.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("switchboard error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	var ce *CloudError
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	} else if errors.As(err, &ce) && ce.Kind != "" {
		return ce.Kind
	} else if pe := (*PartialError)(nil); errors.As(err, &pe) {
		return ECONFLICT
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing sentence of err, never the internals
// of an unexpected error.
func ErrorMessage(err error) string {
	var e *Error
	var ce *CloudError
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	} else if errors.As(err, &ce) {
		return "The cloud answered " + ce.Code + ": " + ce.Message
	} else if pe := (*PartialError)(nil); errors.As(err, &pe) {
		ids := make([]string, 0, len(pe.Failed))
		for id := range pe.Failed {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		if len(ids) == 0 {
			return "Some instances failed."
		}
		return fmt.Sprintf("%d instance(s) failed, e.g. %s: %s", len(ids), ids[0], ErrorMessage(pe.Failed[ids[0]]))
	}
	return "Something went wrong inside Switchboard; the error is in its log."
}

// CloudError is an error a cloud API answered, kept with the cloud's own code
// (IncorrectInstanceState, RequestLimitExceeded, InvalidInstanceID.NotFound...)
// so a summary can say exactly what failed for which instance.
type CloudError struct {
	Code    string   // the cloud's own error code
	Message string   // the cloud's own message
	Kind    string   // one of the E* codes: ECONFLICT, ETHROTTLED, ENOTFOUND, EINVALID, EFORBIDDEN, EUNAVAILABLE
	IDs     []string // the instance ids the error names, when known
	// RetryAfter is how long the cloud asked to wait, when it said.
	RetryAfter time.Duration
}

func (e *CloudError) Error() string {
	return e.Code + ": " + e.Message
}

// PartialError is a batch call that worked for some instances and failed
// for others. Failed holds each failed id's error; whatever the call returned
// with it is for the instances that worked.
type PartialError struct {
	Failed map[string]error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("%d instance(s) failed", len(e.Failed))
}

// Retryable sorts a cloud error. Throttling returns the wait the cloud asked
// for (or 2s); an outage or an unexpected error is transient; anything the
// cloud refused is final (wait 0, transient false).
func Retryable(err error) (wait time.Duration, transient bool) {
	var ce *CloudError
	var se *Error
	switch {
	case ErrorCode(err) == ETHROTTLED:
		wait = 2 * time.Second
		if errors.As(err, &ce) && ce.RetryAfter > 0 {
			wait = ce.RetryAfter
		} else if errors.As(err, &se) && se.RetryAfter > 0 {
			wait = se.RetryAfter
		}
		return wait, false
	case ErrorCode(err) == EUNAVAILABLE, !errors.As(err, &ce) && !errors.As(err, &se):
		return 0, true
	}
	return 0, false
}

// MissingParameter is EC2's answer to a call without a parameter it needs;
// providers answer it themselves for calls the cloud would refuse anyway.
func MissingParameter(name string) *CloudError {
	return &CloudError{Code: "MissingParameter", Message: fmt.Sprintf("The request must contain the parameter %s", name), Kind: EINVALID}
}

// InvalidParameterValue is EC2's answer to a parameter it cannot take,
// with a hint of what it takes.
func InvalidParameterValue(param, value, hint string) *CloudError {
	return &CloudError{Code: "InvalidParameterValue", Message: fmt.Sprintf("Value (%s) for parameter %s is invalid. %s", value, param, hint), Kind: EINVALID}
}

// DryRunCalls maps the actions a dry run covers to the EC2 call each
// stands for (whose permission, and rate bucket, it spends).
var DryRunCalls = map[string]string{
	"start":     "StartInstances",
	"stop":      "StopInstances",
	"reboot":    "RebootInstances",
	"terminate": "TerminateInstances",
}
