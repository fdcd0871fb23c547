package steps

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard"
)

// Outcome is what became of one instance of a command, for the answer in the
// channel.
type Outcome struct {
	ID string
	// Label is how a person knows the instance, "tools (i-0123…)"; the ID
	// when empty.
	Label string
	// Result is what happened, in a few words that fit after the label and
	// after a count: "stopped", "already stopped", "still booting", "failed".
	Result string
	// Detail is set when someone should look at the instance: for a failure,
	// the cloud's code (IncorrectInstanceState, see Reason) or a sentence.
	Detail string
	// Text is the whole sentence for this instance when the answer lists
	// instances one by one ("tools (i-0123…) is now running at 1.2.3.4.");
	// empty means label, result and detail.
	Text string
}

// ResultFailed is the Result of an instance the cloud refused to act on.
const ResultFailed = "failed"

// fewOutcomes is the most instances an answer lists one by one; beyond it
// the answer counts them, and lists at most this many of the ones with a
// Detail.
const fewOutcomes = 10

// Summary is the answer for a command's outcomes. Up to ten instances get a
// line each ("tools (i-0123…) stopped."); more get counts by result, in the
// order the results first appear and those needing a look last, then the
// instances needing a look (those with a Detail), at most ten of them:
//
//	Stopped 1,987; already stopped 12; failed 1: web-7 (i-0abc…) IncorrectInstanceState.
func Summary(outcomes []Outcome) string {
	if len(outcomes) == 0 {
		return "Nothing to do."
	}
	if len(outcomes) <= fewOutcomes {
		lines := make([]string, len(outcomes))
		for i, o := range outcomes {
			lines[i] = o.Text
			if lines[i] == "" {
				lines[i] = sentence(o.label() + " " + o.Result + detail(o.Detail))
			}
		}
		return strings.Join(lines, "\n")
	}

	type group struct {
		result string
		count  int
		look   bool // some outcome in it has a Detail
	}
	var groups []*group
	byResult := map[string]*group{}
	var flagged []Outcome
	for _, o := range outcomes {
		g := byResult[o.Result]
		if g == nil {
			g = &group{result: o.Result}
			byResult[o.Result] = g
			groups = append(groups, g)
		}
		g.count++
		if o.Detail != "" {
			g.look = true
			flagged = append(flagged, o)
		}
	}
	var parts []string
	for _, look := range []bool{false, true} {
		for _, g := range groups {
			if g.look != look {
				continue
			}
			part := g.result + " " + Thousands(g.count)
			if len(flagged) == 1 && flagged[0].Result == g.result {
				part += ": " + flagged[0].label() + " " + flagged[0].Detail
			}
			parts = append(parts, part)
		}
	}
	lines := []string{sentence(capitalize(strings.Join(parts, "; ")))}
	if len(flagged) > 1 {
		for i, o := range flagged {
			if i == fewOutcomes {
				lines = append(lines, fmt.Sprintf("• and %s more.", Thousands(len(flagged)-fewOutcomes)))
				break
			}
			lines = append(lines, "• "+o.label()+" "+o.Result+detail(o.Detail))
		}
	}
	return strings.Join(lines, "\n")
}

func (o Outcome) label() string {
	if o.Label == "" {
		return o.ID
	}
	return o.Label
}

func detail(d string) string {
	if d == "" {
		return ""
	}
	return ": " + d
}

// sentence ends s with a full stop unless it already ends a sentence.
func sentence(s string) string {
	if strings.HasSuffix(s, ".") || strings.HasSuffix(s, "!") || strings.HasSuffix(s, "?") {
		return s
	}
	return s + "."
}

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// Thousands writes n with a comma between thousands: 1,987.
func Thousands(n int) string { return switchboard.Thousands(n) }

// Failures returns the instances that failed on their own in err, by id:
// the Failed of the *switchboard.PartialError in err's chain, nil when there
// is none (the call failed as a whole, or did not fail).
func Failures(err error) map[string]error {
	var pe *switchboard.PartialError
	if errors.As(err, &pe) {
		return pe.Failed
	}
	return nil
}

// Reason is the Detail for an instance that failed with err: the cloud's own
// code (IncorrectInstanceState, InvalidInstanceID.NotFound) when the cloud
// answered, which is short and searchable, otherwise the sentence
// switchboard.ErrorMessage gives a person.
func Reason(err error) string {
	var ce *switchboard.CloudError
	if errors.As(err, &ce) && ce.Code != "" {
		return ce.Code
	}
	return switchboard.ErrorMessage(err)
}
