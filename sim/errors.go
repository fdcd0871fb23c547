package sim

import (
	"fmt"
	"strings"

	"github.com/switchboardhq/switchboard"
)

// The errors below carry EC2's own codes and, as near as EC2 documents or
// shows them, its messages, so code above the provider handles the simulated
// cloud and the real one alike.

func errMalformed(ids []string) *switchboard.CloudError {
	return &switchboard.CloudError{
		Code:    "InvalidInstanceID.Malformed",
		Message: fmt.Sprintf("Invalid id: %q (expecting \"i-...\")", ids[0]),
		Kind:    switchboard.EINVALID,
		IDs:     ids,
	}
}

// errInvalidID is errMalformed as the tag calls say it: they take ids of
// every kind of resource, so EC2 does not say which kind it expected.
func errInvalidID(ids []string) *switchboard.CloudError {
	return &switchboard.CloudError{
		Code:    "InvalidID",
		Message: fmt.Sprintf("The ID '%s' is not valid", ids[0]),
		Kind:    switchboard.EINVALID,
		IDs:     ids,
	}
}

func errNotFound(ids []string) *switchboard.CloudError {
	msg := fmt.Sprintf("The instance ID '%s' does not exist", ids[0])
	if len(ids) > 1 {
		msg = fmt.Sprintf("The instance IDs '%s' do not exist", strings.Join(ids, ", "))
	}
	return &switchboard.CloudError{
		Code:    "InvalidInstanceID.NotFound",
		Message: msg,
		Kind:    switchboard.ENOTFOUND,
		IDs:     ids,
	}
}

// errIncorrectState names the first instance in its message, as EC2 does,
// and all of them in IDs.
func errIncorrectState(ids []string, what string) *switchboard.CloudError {
	return &switchboard.CloudError{
		Code:    "IncorrectInstanceState",
		Message: fmt.Sprintf("The instance '%s' is not in a state from which it %s.", ids[0], what),
		Kind:    switchboard.ECONFLICT,
		IDs:     ids,
	}
}

func errIncorrectStateFor(id string) *switchboard.CloudError {
	return &switchboard.CloudError{
		Code:    "IncorrectInstanceState",
		Message: fmt.Sprintf("The instance '%s' is not in a valid state for this operation.", id),
		Kind:    switchboard.ECONFLICT,
		IDs:     []string{id},
	}
}

func errThrottled() *switchboard.CloudError {
	return &switchboard.CloudError{
		Code:    "RequestLimitExceeded",
		Message: "Request limit exceeded.",
		Kind:    switchboard.ETHROTTLED,
	}
}

func errTooManyIDs(n int) *switchboard.CloudError {
	return &switchboard.CloudError{
		Code:    "InvalidParameterValue",
		Message: fmt.Sprintf("The request names %d instance IDs; the maximum is %d.", n, maxIDs),
		Kind:    switchboard.EINVALID,
	}
}

func errTagLimit() *switchboard.CloudError {
	return &switchboard.CloudError{
		Code:    "TagLimitExceeded",
		Message: "The maximum number of Tags for a resource has been reached.",
		Kind:    switchboard.EINVALID,
	}
}

func errImageMalformed(id string) *switchboard.CloudError {
	return &switchboard.CloudError{
		Code:    "InvalidAMIID.Malformed",
		Message: fmt.Sprintf("Invalid id: %q (expecting \"ami-...\")", id),
		Kind:    switchboard.EINVALID,
	}
}

func errAddressNotFound(ip string) *switchboard.CloudError {
	return &switchboard.CloudError{
		Code:    "InvalidAddress.NotFound",
		Message: fmt.Sprintf("The address '%s' does not belong to you.", ip),
		Kind:    switchboard.ENOTFOUND,
	}
}

func errIdempotentMismatch(token string) *switchboard.CloudError {
	return &switchboard.CloudError{
		Code:    "IdempotentParameterMismatch",
		Message: fmt.Sprintf("The client token '%s' was already used with different parameters.", token),
		Kind:    switchboard.EINVALID,
	}
}

// errInternal is what an injected fault answers by default: EC2's 500, which
// callers should treat as worth a retry.
func errInternal(ids []string) *switchboard.CloudError {
	return &switchboard.CloudError{
		Code:    "InternalError",
		Message: "An internal error has occurred.",
		Kind:    switchboard.EUNAVAILABLE,
		IDs:     ids,
	}
}

// errSaveFailed is InternalError for a call the cloud undid because it could
// not remember it; the message names the file so an operator can fix it.
func errSaveFailed(err error) *switchboard.CloudError {
	return &switchboard.CloudError{
		Code:    "InternalError",
		Message: fmt.Sprintf("An internal error has occurred: the simulated cloud could not save its state, so nothing was changed (%v).", err),
		Kind:    switchboard.EUNAVAILABLE,
	}
}
