package switchboard_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard"
)

var _ switchboard.Meter = switchboard.NopMeter{}

func TestErrorCodeAndMessage(t *testing.T) {
	t.Parallel()
	conflict := &switchboard.CloudError{
		Code:    "IncorrectInstanceState",
		Message: "The instance 'i-0123456789abcdef0' is not in a state from which it can be started.",
		Kind:    switchboard.ECONFLICT,
		IDs:     []string{"i-0123456789abcdef0"},
	}
	tests := []struct {
		name        string
		err         error
		wantCode    string
		wantMessage string
	}{
		{name: "nil", err: nil, wantCode: "", wantMessage: ""},
		{
			name:        "error",
			err:         switchboard.Errorf(switchboard.ENOTFOUND, "There is no run %s.", "r-1"),
			wantCode:    switchboard.ENOTFOUND,
			wantMessage: "There is no run r-1.",
		},
		{
			name:        "wrapped error",
			err:         fmt.Errorf("get run: %w", switchboard.Errorf(switchboard.EFORBIDDEN, "Sorry, not here.")),
			wantCode:    switchboard.EFORBIDDEN,
			wantMessage: "Sorry, not here.",
		},
		{
			name:        "cloud error",
			err:         conflict,
			wantCode:    switchboard.ECONFLICT,
			wantMessage: "The cloud answered IncorrectInstanceState: The instance 'i-0123456789abcdef0' is not in a state from which it can be started.",
		},
		{
			name:        "wrapped cloud error",
			err:         fmt.Errorf("start: %w", conflict),
			wantCode:    switchboard.ECONFLICT,
			wantMessage: "The cloud answered IncorrectInstanceState: The instance 'i-0123456789abcdef0' is not in a state from which it can be started.",
		},
		{
			name:        "cloud error without a kind",
			err:         &switchboard.CloudError{Code: "Weird", Message: "Something odd."},
			wantCode:    switchboard.EINTERNAL,
			wantMessage: "The cloud answered Weird: Something odd.",
		},
		{
			name:        "plain error",
			err:         errors.New("dial tcp 10.1.2.3:5432: password authentication failed for user sb"),
			wantCode:    switchboard.EINTERNAL,
			wantMessage: "Something went wrong inside Switchboard; the error is in its log.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := switchboard.ErrorCode(tt.err); got != tt.wantCode {
				t.Errorf("ErrorCode = %q, want %q", got, tt.wantCode)
			}
			if got := switchboard.ErrorMessage(tt.err); got != tt.wantMessage {
				t.Errorf("ErrorMessage = %q, want %q", got, tt.wantMessage)
			}
		})
	}
}

// An unexpected error's text stays in the log: none of it reaches a user.
func TestErrorMessageHidesInternals(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("save run r-1: %w", errors.New("pq: password authentication failed"))
	msg := switchboard.ErrorMessage(err)
	for _, leak := range []string{"pq", "password", "r-1", "save run"} {
		if strings.Contains(msg, leak) {
			t.Errorf("ErrorMessage = %q, leaks %q", msg, leak)
		}
	}
}

func TestErrorError(t *testing.T) {
	t.Parallel()
	err := switchboard.Errorf(switchboard.EINVALID, "Try %s.", "`/ec2 start tools`")
	if got, want := err.Error(), "switchboard error: code=invalid message=Try `/ec2 start tools`."; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	ce := &switchboard.CloudError{Code: "RequestLimitExceeded", Message: "Request limit exceeded.", Kind: switchboard.ETHROTTLED}
	if got, want := ce.Error(), "RequestLimitExceeded: Request limit exceeded."; got != want {
		t.Errorf("CloudError.Error() = %q, want %q", got, want)
	}
}

func TestAccessAllows(t *testing.T) {
	t.Parallel()
	anywhere := switchboard.Access{Users: []string{"U0OPS1", "U0OPS2"}}
	opsOnly := switchboard.Access{Users: []string{"U0OPS1"}, Channels: []string{"C0OPS", "C0INFRA"}}
	tests := []struct {
		name    string
		access  switchboard.Access
		user    string
		channel string
		want    bool
		why     string
	}{
		{"listed user, any channel", anywhere, "U0OPS2", "C0RANDOM", true, ""},
		{"unlisted user", anywhere, "U0GUEST", "C0OPS", false, "you are not on this command's allow list"},
		{"listed user, listed channel", opsOnly, "U0OPS1", "C0INFRA", true, ""},
		{"listed user, other channel", opsOnly, "U0OPS1", "C0RANDOM", false, "this command is not allowed in this channel"},
		{"unlisted user, listed channel", opsOnly, "U0GUEST", "C0OPS", false, "you are not on this command's allow list"},
		{"nobody listed", switchboard.Access{}, "U0OPS1", "C0OPS", false, "you are not on this command's allow list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok, why := tt.access.Allows(tt.user, tt.channel)
			if ok != tt.want || why != tt.why {
				t.Errorf("Allows(%q, %q) = %v, %q; want %v, %q", tt.user, tt.channel, ok, why, tt.want, tt.why)
			}
		})
	}
}

func TestInstanceLabel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		inst switchboard.Instance
		want string
	}{
		{switchboard.Instance{ID: "i-0123456789abcdef0", Name: "tools"}, "tools (i-0123456789abcdef0)"},
		{switchboard.Instance{ID: "i-0123456789abcdef0"}, "i-0123456789abcdef0"},
	}
	for _, tt := range tests {
		if got := tt.inst.Label(); got != tt.want {
			t.Errorf("%+v.Label() = %q, want %q", tt.inst, got, tt.want)
		}
	}
}

func TestRunStateFinished(t *testing.T) {
	t.Parallel()
	tests := map[switchboard.RunState]bool{
		switchboard.RunQueued:    false,
		switchboard.RunRunning:   false,
		switchboard.RunWaiting:   false,
		switchboard.RunSucceeded: true,
		switchboard.RunFailed:    true,
		"":                       false,
	}
	for state, want := range tests {
		if got := state.Finished(); got != want {
			t.Errorf("RunState(%q).Finished() = %v, want %v", state, got, want)
		}
	}
}
