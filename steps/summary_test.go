package steps_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/steps"
)

// outcomes makes n outcomes with result, labelled web-<from>... .
func outcomes(from, n int, result, detail string) []steps.Outcome {
	out := make([]steps.Outcome, n)
	for i := range out {
		out[i] = steps.Outcome{ID: id(from + i), Label: fmt.Sprintf("web-%d (%s)", from+i, id(from+i)), Result: result, Detail: detail}
	}
	return out
}

func concat(lists ...[]steps.Outcome) []steps.Outcome {
	var out []steps.Outcome
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func TestSummary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		outcomes []steps.Outcome
		want     string
	}{
		{"none", nil, "Nothing to do."},
		{
			"a few, one line each",
			concat(outcomes(0, 2, "stopped", ""), outcomes(2, 1, "already stopped", ""), outcomes(3, 1, steps.ResultFailed, "IncorrectInstanceState"),
				[]steps.Outcome{{ID: id(4), Result: "still stopping", Detail: "check it with `/ec2 status " + id(4) + "`."}}),
			"web-0 (i-00000000000000001) stopped.\n" +
				"web-1 (i-00000000000000002) stopped.\n" +
				"web-2 (i-00000000000000003) already stopped.\n" +
				"web-3 (i-00000000000000004) failed: IncorrectInstanceState.\n" +
				"i-00000000000000005 still stopping: check it with `/ec2 status i-00000000000000005`.",
		},
		{
			"ten is still a few",
			outcomes(0, 10, "started", ""),
			"web-0 (i-00000000000000001) started.\nweb-1 (i-00000000000000002) started.\nweb-2 (i-00000000000000003) started.\n" +
				"web-3 (i-00000000000000004) started.\nweb-4 (i-00000000000000005) started.\nweb-5 (i-00000000000000006) started.\n" +
				"web-6 (i-00000000000000007) started.\nweb-7 (i-00000000000000008) started.\nweb-8 (i-00000000000000009) started.\n" +
				"web-9 (i-0000000000000000a) started.",
		},
		{
			"the user story: counts, and the one failure inline",
			concat(outcomes(0, 1000, "stopped", ""), outcomes(1000, 1, steps.ResultFailed, "IncorrectInstanceState"),
				outcomes(1001, 12, "already stopped", ""), outcomes(1013, 987, "stopped", "")),
			"Stopped 1,987; already stopped 12; failed 1: web-1000 (" + id(1000) + ") IncorrectInstanceState.",
		},
		{
			"many failures: ten listed, then a count",
			concat(outcomes(0, 20, "stopped", ""), outcomes(20, 13, steps.ResultFailed, "InvalidInstanceID.NotFound"), outcomes(33, 2, "still stopping", "check back in a minute")),
			"Stopped 20; failed 13; still stopping 2.\n" +
				"• web-20 (i-00000000000000015) failed: InvalidInstanceID.NotFound\n" +
				"• web-21 (i-00000000000000016) failed: InvalidInstanceID.NotFound\n" +
				"• web-22 (i-00000000000000017) failed: InvalidInstanceID.NotFound\n" +
				"• web-23 (i-00000000000000018) failed: InvalidInstanceID.NotFound\n" +
				"• web-24 (i-00000000000000019) failed: InvalidInstanceID.NotFound\n" +
				"• web-25 (i-0000000000000001a) failed: InvalidInstanceID.NotFound\n" +
				"• web-26 (i-0000000000000001b) failed: InvalidInstanceID.NotFound\n" +
				"• web-27 (i-0000000000000001c) failed: InvalidInstanceID.NotFound\n" +
				"• web-28 (i-0000000000000001d) failed: InvalidInstanceID.NotFound\n" +
				"• web-29 (i-0000000000000001e) failed: InvalidInstanceID.NotFound\n" +
				"• and 5 more.",
		},
		{
			"many, all fine",
			concat(outcomes(0, 11, "rebooted", "")),
			"Rebooted 11.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := steps.Summary(tt.outcomes); got != tt.want {
				t.Errorf("Summary() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 1987: "1,987", 12345: "12,345", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := steps.Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{&switchboard.CloudError{Code: "IncorrectInstanceState", Kind: switchboard.ECONFLICT}, "IncorrectInstanceState"},
		{fmt.Errorf("stop: %w", &switchboard.CloudError{Code: "InvalidInstanceID.NotFound"}), "InvalidInstanceID.NotFound"},
		{switchboard.Errorf(switchboard.EFORBIDDEN, "You may not stop prod."), "You may not stop prod."},
		{errors.New("connection reset"), "Something went wrong inside Switchboard; the error is in its log."},
	}
	for _, tt := range tests {
		if got := steps.Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func id(n int) string { return fmt.Sprintf("i-%017x", n+1) }
