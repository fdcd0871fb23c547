package github_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
)

// The match rules live in the domain (switchboard.MatchBranches) and are
// tested here on candidates shaped like this source's: the domain package
// keeps to its own files.

func TestMatchRules(t *testing.T) {
	t.Parallel()
	day := func(d int) time.Time { return time.Date(2025, 3, d, 12, 0, 0, 0, time.UTC) }
	candidates := []switchboard.Branch{
		{Name: "feature/PROJ-1234-login-fix", Commit: sha("a"), PR: 57, Title: "Fix login timeouts", UpdatedAt: day(3)},
		{Name: "feature/PROJ-1234-login-fix", Commit: sha("a"), PR: 59, Title: "Login fix for release 2.0", UpdatedAt: day(4)}, // a second PR from one branch
		{Name: "bugfix/PROJ-57-crash", Commit: sha("b"), PR: 88, Title: "Crash on start", UpdatedAt: day(5)},
		{Name: "Release", Commit: sha("c")},
		{Name: "release", Commit: sha("d")},
		{Name: "outsider:release", Commit: sha("e"), PR: 90, Title: "Release notes", UpdatedAt: day(6)},
		{Name: "2024-cleanup", Commit: sha("f"), PR: 91, Title: "Cleanup", UpdatedAt: day(1)},
		{Name: "feature/search", Commit: sha("g"), PR: 92, Title: "PROJ-1400: search by tag", UpdatedAt: day(2)},
		{Name: "hotfix/PROJ-99-x", Commit: sha("h")},
		{Name: "chore/v1234-bump", Commit: sha("i")},
	}
	tests := []struct {
		query string
		want  []string // names, best first; PR numbers where they tell apart
	}{
		{"release", []string{"release"}},                 // case-sensitive exact name first
		{"RELEASE", []string{"Release", "release"}},      // then any case: both
		{"#57", []string{"feature/PROJ-1234-login-fix"}}, // only the PR number
		// A bare number is a PR number or a ticket number; both exist on
		// different branches here, so both are listed, newest first.
		{"57", []string{"bugfix/PROJ-57-crash", "feature/PROJ-1234-login-fix"}},
		{"#59", []string{"feature/PROJ-1234-login-fix"}},
		{"login", []string{"feature/PROJ-1234-login-fix"}}, // one branch, listed once
		{"1234", []string{"feature/PROJ-1234-login-fix"}},  // not chore/v1234-bump
		{"2024", []string{"2024-cleanup"}},                 // a number at the start of a name
		{"123", nil},                                       // a number is never a substring
		{"#5", nil},
		{"PROJ-1400", []string{"feature/search"}}, // a ticket id in a title, when no name has it
		{"proj-99", []string{"hotfix/PROJ-99-x"}},
		{"PROJ-9", nil},
		{"search tag", []string{"feature/search"}},                  // title words
		{"sear", []string{"feature/search"}},                        // part of a name
		{"notes", []string{"outsider:release"}},                     // a title word
		{"rel", []string{"outsider:release", "Release", "release"}}, // part of names, newest first
		{"crash start", []string{"bugfix/PROJ-57-crash"}},           // title words, in any order
		{"login 2", []string{"feature/PROJ-1234-login-fix"}},        // words of "Login fix for release 2.0"
		{"login 20", nil},                                           // a word with digits is whole
		{"", nil},
	}
	for _, tt := range tests {
		got := switchboard.MatchBranches(tt.query, candidates)
		if strings.Join(names(got), ",") != strings.Join(tt.want, ",") {
			t.Errorf("%q matched %v, want %v", tt.query, names(got), tt.want)
		}
	}
	// Of two pull requests from one branch, the most recently updated
	// stands for it.
	if got := switchboard.MatchBranches("login", candidates); len(got) == 1 && got[0].PR != 59 {
		t.Errorf("login matched PR #%d, want #59", got[0].PR)
	}
}

func TestRateLimitedSentence(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 4, 17, 5, 0, 0, time.UTC)
	tests := []struct {
		reset  time.Time
		advice string
		want   string
		wait   time.Duration
	}{
		{now.Add(36*time.Minute + 20*time.Second), "set github.token for 5,000 requests an hour",
			"GitHub's rate limit is used up until 17:42 UTC; try again then (set github.token for 5,000 requests an hour).", 36*time.Minute + 20*time.Second},
		{now.Add(37 * time.Minute), "", "GitHub's rate limit is used up until 17:42 UTC; try again then.", 37 * time.Minute},
		{now.Add(30 * time.Hour), "", "GitHub's rate limit is used up until Mar 5 23:05 UTC; try again then.", 30 * time.Hour},
		{time.Time{}, "", "GitHub's rate limit is used up, and it did not say until when; try again later.", 0},
	}
	for _, tt := range tests {
		e := switchboard.RateLimited("GitHub", tt.reset, now, tt.advice)
		if e.Code != switchboard.ETHROTTLED || e.Message != tt.want || e.RetryAfter != tt.wait {
			t.Errorf("reset %v: %s %q %v, want %q %v", tt.reset, e.Code, e.Message, e.RetryAfter, tt.want, tt.wait)
		}
	}
}

func TestLabels(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		b    switchboard.Branch
		want string
	}{
		{switchboard.Branch{Name: "feature/PROJ-1234-login-fix", Commit: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", PR: 57}, "feature/PROJ-1234-login-fix (a1b2c3d, PR #57)"},
		{switchboard.Branch{Name: "main", Commit: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"}, "main (a1b2c3d)"},
		{switchboard.Branch{Name: "main"}, "main"},
	} {
		if got := tt.b.Label(); got != tt.want {
			t.Errorf("Label() = %q, want %q", got, tt.want)
		}
	}
}
