package switchboard

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Branch deploys (`/deploy login-fix`) start by finding one branch among a
// team's open pull requests and branches. Each place branches come from
// (GitHub, a local git repository) is a BranchSource in its own package; the
// rules that decide which branch a query means live here, once, so every
// source answers the same query the same way.

// Branch is a branch a deploy can be made from, with its open pull request
// when it has one.
type Branch struct {
	// Name is the branch name, such as feature/PROJ-1234-login-fix. A pull
	// request from a fork is named as GitHub labels it, OWNER:BRANCH, so it
	// cannot be taken for a branch of the repository itself.
	Name string `json:"name"`
	// Commit is the full SHA of the branch's head commit.
	Commit string `json:"commit"`
	// PR is the number of the branch's open pull request; 0 when it has
	// none.
	PR int `json:"pr,omitempty"`
	// Title is the pull request's title.
	Title string `json:"title,omitempty"`
	// URL is the pull request's web page, or the branch's when it has no
	// pull request and the source has web pages.
	URL string `json:"url,omitempty"`
	// Author is who opened the pull request, or who made the head commit,
	// when the source knows.
	Author string `json:"author,omitempty"`
	// UpdatedAt is when the pull request or the head commit last changed,
	// when the source knows.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// ShortCommit is the commit's first seven hex digits, as git abbreviates it.
func (b Branch) ShortCommit() string {
	if len(b.Commit) > 7 {
		return b.Commit[:7]
	}
	return b.Commit
}

// Label is how a branch is named to a person:
// "feature/PROJ-1234-login-fix (a1b2c3d, PR #57)", or "main (a1b2c3d)".
func (b Branch) Label() string {
	var parts []string
	if c := b.ShortCommit(); c != "" {
		parts = append(parts, c)
	}
	if b.PR > 0 {
		parts = append(parts, "PR #"+strconv.Itoa(b.PR))
	}
	if len(parts) == 0 {
		return b.Name
	}
	return b.Name + " (" + strings.Join(parts, ", ") + ")"
}

// BranchSource finds the branches a query means: GitHub's open pull
// requests and branches, or a local repository's branches.
type BranchSource interface {
	// FindBranches returns the branches query matches under MatchBranches,
	// best first: one when the query is unambiguous, several when it is
	// not, none when nothing matches (and for an empty query). It returns
	// an error, never a guess, when the source could not be read
	// completely: an *Error with ETHROTTLED (and RetryAfter) when a rate
	// limit is used up, EUNAVAILABLE when the source did not answer.
	FindBranches(ctx context.Context, query string) ([]Branch, error)
}

// MaxListedBranches is how many candidates an ambiguous answer lists.
const MaxListedBranches = 10

// MatchBranches returns the candidates query means, best first. The rules
// are tried in this order, and the first that matches anything decides:
//
//  1. The exact branch name (case-sensitive first, then ignoring case).
//  2. A pull request number: "#57" means PR #57 and nothing else. A bare
//     "57" means PR #57 or the number 57 as a segment of a branch name
//     (PROJ-57-crash, 57-hotfix): a number can be either, so when both
//     exist on different branches the answer lists both rather than pick
//     one. A number never matches as a mere substring (123 is not PROJ-1234).
//  3. A ticket id such as PROJ-1234, ignoring case, inside a branch name
//     between separators (feature/PROJ-1234-login-fix, not PROJ-12345),
//     then inside a pull request title. A ticket id never matches as a
//     substring either.
//  4. Part of a branch name, ignoring case (login-fix).
//  5. Words of a pull request title, ignoring case: every word of the query
//     starts a word of the title (a word with digits must be whole).
//
// So an exact name or a "#57" wins outright, and a query that names one
// thing precisely is never diluted by looser matches. Within a rule the most
// recently updated come first, and a branch listed twice (two pull requests
// from one branch) is kept once.
func MatchBranches(query string, candidates []Branch) []Branch {
	q := strings.TrimSpace(query)
	if q == "" {
		return nil
	}
	if m := filterBranches(candidates, func(b Branch) bool { return b.Name == q }); len(m) > 0 {
		return m
	}
	if m := filterBranches(candidates, func(b Branch) bool { return strings.EqualFold(b.Name, q) }); len(m) > 0 {
		return m
	}
	if n, ok := PRQuery(q); ok {
		return filterBranches(candidates, func(b Branch) bool { return b.PR == n })
	}
	if isDigits(q) {
		n, err := strconv.Atoi(q)
		if err != nil {
			return nil // more digits than any pull request number
		}
		return filterBranches(candidates, func(b Branch) bool {
			return b.PR == n || containsToken(b.Name, q)
		})
	}
	if ticketPattern.MatchString(q) {
		if m := filterBranches(candidates, func(b Branch) bool { return containsToken(b.Name, q) }); len(m) > 0 {
			return m
		}
		return filterBranches(candidates, func(b Branch) bool { return containsToken(b.Title, q) })
	}
	lq := strings.ToLower(q)
	if m := filterBranches(candidates, func(b Branch) bool { return strings.Contains(strings.ToLower(b.Name), lq) }); len(m) > 0 {
		return m
	}
	words := splitWords(q)
	if len(words) == 0 {
		return nil
	}
	return filterBranches(candidates, func(b Branch) bool { return titleHasWords(b.Title, words) })
}

// PRQuery reports whether query names a pull request by its number alone,
// as "#57". A source can answer such a query from its pull requests without
// listing every branch.
func PRQuery(query string) (int, bool) {
	q := strings.TrimSpace(query)
	if !strings.HasPrefix(q, "#") || !isDigits(q[1:]) {
		return 0, false
	}
	n, err := strconv.Atoi(q[1:])
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// PickBranch returns the one branch of matches (what FindBranches returned
// for query), or the *Error that tells the person what to type instead:
// EINVALID for an empty query or an ambiguous one, ENOTFOUND when nothing
// matched.
func PickBranch(query string, matches []Branch) (Branch, error) {
	switch {
	case strings.TrimSpace(query) == "":
		return Branch{}, Errorf(EINVALID, "Say which branch: part of its name, a ticket id like PROJ-1234, or a PR number like #57.")
	case len(matches) == 0:
		return Branch{}, NoBranchMatches(query)
	case len(matches) > 1:
		return Branch{}, AmbiguousBranches(query, matches)
	}
	return matches[0], nil
}

// NoBranchMatches is the ENOTFOUND answer to a query nothing matches.
func NoBranchMatches(query string) *Error {
	return Errorf(ENOTFOUND, "No open pull request or branch matches %s. Try part of the branch name, a ticket id like PROJ-1234, or a PR number like #57.", quoteQuery(query))
}

// AmbiguousBranches is the EINVALID answer to a query several branches
// match: the first MaxListedBranches of them with their pull requests, and
// how many more there are.
func AmbiguousBranches(query string, matches []Branch) *Error {
	lines := []string{fmt.Sprintf("%s matches %d branches; say which one by its full name or PR number:", quoteQuery(query), len(matches))}
	for i, b := range matches {
		if i == MaxListedBranches {
			lines = append(lines, fmt.Sprintf("• and %d more.", len(matches)-MaxListedBranches))
			break
		}
		switch {
		case b.PR > 0 && b.Title != "":
			lines = append(lines, fmt.Sprintf("• %s — PR #%d: %s", EscapeText(b.Name), b.PR, EscapeText(clip(b.Title, 80))))
		case b.PR > 0:
			lines = append(lines, fmt.Sprintf("• %s — PR #%d", b.Name, b.PR))
		default:
			lines = append(lines, fmt.Sprintf("• %s (%s, no pull request)", b.Name, b.ShortCommit()))
		}
	}
	return &Error{Code: EINVALID, Message: strings.Join(lines, "\n")}
}

// RateLimited is the ETHROTTLED answer of a source whose peer's rate limit
// is used up until reset: "GitHub's rate limit is used up until 17:42 UTC;
// try again then (set github.token for 5,000 requests an hour)." The time is
// the one the peer gave, rounded up to the minute so that trying at that
// minute works; when the peer gave none (a zero reset) the answer says so
// rather than guess. advice, when set, is added in parentheses.
func RateLimited(peer string, reset, now time.Time, advice string) *Error {
	var msg string
	var wait time.Duration
	if reset.IsZero() {
		msg = peer + "'s rate limit is used up, and it did not say until when; try again later"
	} else {
		at := reset.UTC()
		if t := at.Truncate(time.Minute); t.Before(at) {
			at = t.Add(time.Minute)
		}
		layout := "15:04 UTC"
		if at.Sub(now) > 20*time.Hour {
			layout = "Jan 2 15:04 UTC"
		}
		msg = peer + "'s rate limit is used up until " + at.Format(layout) + "; try again then"
		wait = max(reset.Sub(now), 0)
	}
	if advice != "" {
		msg += " (" + advice + ")"
	}
	return &Error{Code: ETHROTTLED, Message: msg + ".", RetryAfter: wait}
}

// ticketPattern is an issue tracker's ticket id: a project key, a dash, a
// number (PROJ-1234, ab_2-17).
var ticketPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*-[0-9]+$`)

// filterBranches keeps the candidates keep accepts, most recently updated
// first, each name once.
func filterBranches(candidates []Branch, keep func(Branch) bool) []Branch {
	var out []Branch
	for _, b := range candidates {
		if keep(b) {
			out = append(out, b)
		}
	}
	slices.SortStableFunc(out, func(a, b Branch) int {
		if c := b.UpdatedAt.Compare(a.UpdatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.PR, a.PR)
	})
	seen := make(map[string]bool, len(out))
	return slices.DeleteFunc(out, func(b Branch) bool {
		dup := seen[b.Name]
		seen[b.Name] = true
		return dup
	})
}

// containsToken reports whether s holds tok, ignoring case, with no letter
// or digit right before or after it: PROJ-1234 is in
// feature/PROJ-1234-login-fix but not in PROJ-12345 or XPROJ-1234.
func containsToken(s, tok string) bool {
	ls, lt := strings.ToLower(s), strings.ToLower(tok)
	for from := 0; ; {
		i := strings.Index(ls[from:], lt)
		if i < 0 {
			return false
		}
		i += from
		end := i + len(lt)
		if (i == 0 || !isAlnum(ls[i-1])) && (end == len(ls) || !isAlnum(ls[end])) {
			return true
		}
		from = i + 1
	}
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// splitWords splits s into lower-case words of letters and digits.
func splitWords(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// titleHasWords reports whether every word starts a word of title; a word
// with a digit in it must be a whole word, so 12 does not find 1234.
func titleHasWords(title string, words []string) bool {
	if title == "" {
		return false
	}
	have := splitWords(title)
	for _, w := range words {
		digits := strings.ContainsFunc(w, unicode.IsDigit)
		if !slices.ContainsFunc(have, func(h string) bool {
			return h == w || !digits && strings.HasPrefix(h, w)
		}) {
			return false
		}
	}
	return true
}

// quoteQuery writes what a person typed back to them, quoted and kept short.
func quoteQuery(query string) string {
	return `"` + clip(strings.TrimSpace(query), 60) + `"`
}

// clip shortens s to n runes, ending it with an ellipsis when cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return strings.TrimSpace(string(r[:n-1])) + "…"
}
