package github_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/github"
	"github.com/switchboardhq/switchboard/github/githubtest"
)

const repo = "octo-org/octo-app"

// sha is a stable commit id for a name.
func sha(name string) string {
	sum := sha1.Sum([]byte(name))
	return hex.EncodeToString(sum[:])
}

// seed fills srv with the repository of the user story: three pull requests
// with ticket ids, one from a fork whose branch is called main, and the
// repository's own branches, one of them without a pull request.
func seed(srv *githubtest.Server) {
	srv.AddPullRequests(
		githubtest.PullRequest{Number: 57, Title: "Fix login timeouts", Branch: "feature/PROJ-1234-login-fix", SHA: sha("login"), User: "mona"},
		githubtest.PullRequest{Number: 58, Title: "Search by tag", Branch: "feature/PROJ-1240-search", SHA: sha("search"), User: "hubot"},
		githubtest.PullRequest{Number: 61, Title: "Retry on gateway errors", Branch: "bugfix/PROJ-1301-timeouts", SHA: sha("timeouts")},
		githubtest.PullRequest{Number: 62, Title: "Typo in README", Branch: "main", SHA: sha("fork-main"), Fork: "outsider"},
		githubtest.PullRequest{Number: 40, Title: "Old idea", Branch: "feature/old", SHA: sha("old"), State: "closed"},
	)
	srv.AddBranches(
		githubtest.Branch{Name: "main", SHA: sha("main"), Protected: true},
		githubtest.Branch{Name: "feature/PROJ-1234-login-fix", SHA: sha("login")},
		githubtest.Branch{Name: "feature/PROJ-1240-search", SHA: sha("search")},
		githubtest.Branch{Name: "bugfix/PROJ-1301-timeouts", SHA: sha("timeouts")},
		githubtest.Branch{Name: "release/2.0", SHA: sha("release")},
		githubtest.Branch{Name: "feature/old", SHA: sha("old")},
	)
}

// setup starts a fake GitHub and a Source on it; token may be empty.
func setup(t *testing.T, opts githubtest.Options, token string) (*githubtest.Server, *github.Source) {
	t.Helper()
	srv := githubtest.NewServer(opts)
	t.Cleanup(srv.Close)
	src, err := github.New(github.Options{Repository: repo, Token: token, APIURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return srv, src
}

func find(t *testing.T, src *github.Source, query string) []switchboard.Branch {
	t.Helper()
	found, err := src.FindBranches(context.Background(), query)
	if err != nil {
		t.Fatalf("FindBranches(%q): %v", query, err)
	}
	return found
}

func names(bs []switchboard.Branch) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Name
	}
	return out
}

func TestFindUnique(t *testing.T) {
	t.Parallel()
	srv, src := setup(t, githubtest.Options{}, "")
	seed(srv)
	tests := []struct {
		query string
		want  string
	}{
		{"feature/PROJ-1234-login-fix", "feature/PROJ-1234-login-fix"}, // exact name
		{"FEATURE/proj-1234-LOGIN-fix", "feature/PROJ-1234-login-fix"}, // exact name, any case
		{"#57", "feature/PROJ-1234-login-fix"},                         // PR number
		{"57", "feature/PROJ-1234-login-fix"},                          // bare PR number
		{"PROJ-1234", "feature/PROJ-1234-login-fix"},                   // ticket id
		{"proj-1234", "feature/PROJ-1234-login-fix"},                   // ticket id, any case
		{"1234", "feature/PROJ-1234-login-fix"},                        // ticket number in the name
		{"login-fix", "feature/PROJ-1234-login-fix"},                   // part of the name
		{"timeouts", "bugfix/PROJ-1301-timeouts"},                      // a name beats #57's title "Fix login timeouts"
		{"search tag", "feature/PROJ-1240-search"},                     // title words
		{"gateway", "bugfix/PROJ-1301-timeouts"},                       // a title word's start
		{"main", "main"},                                               // the repository's main, not outsider:main
		{"#62", "outsider:main"},                                       // a fork's pull request, by number
		{"release/2.0", "release/2.0"},                                 // a branch without a pull request
	}
	for _, tt := range tests {
		found := find(t, src, tt.query)
		b, err := switchboard.PickBranch(tt.query, found)
		if err != nil {
			t.Errorf("%q: %v (found %v)", tt.query, switchboard.ErrorMessage(err), names(found))
			continue
		}
		if b.Name != tt.want {
			t.Errorf("%q found %s, want %s", tt.query, b.Name, tt.want)
		}
	}

	b, _ := switchboard.PickBranch("1234", find(t, src, "1234"))
	want := switchboard.Branch{
		Name:      "feature/PROJ-1234-login-fix",
		Commit:    sha("login"),
		PR:        57,
		Title:     "Fix login timeouts",
		URL:       srv.URL + "/" + repo + "/pull/57",
		Author:    "mona",
		UpdatedAt: time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC).Add(57*time.Hour + 30*time.Minute),
	}
	if b != want {
		t.Errorf("1234 found\n%+v, want\n%+v", b, want)
	}
	if got, want := "Deploying "+b.Label(), "Deploying feature/PROJ-1234-login-fix ("+sha("login")[:7]+", PR #57)"; got != want {
		t.Errorf("label %q, want %q", got, want)
	}

	rel, _ := switchboard.PickBranch("release/2.0", find(t, src, "release/2.0"))
	if rel.PR != 0 || rel.Commit != sha("release") || rel.URL != srv.URL+"/"+repo+"/tree/release/2.0" {
		t.Errorf("release/2.0 = %+v", rel)
	}
}

func TestFindByPRNumberReadsOnlyPullRequests(t *testing.T) {
	t.Parallel()
	srv, src := setup(t, githubtest.Options{}, "")
	seed(srv)
	find(t, src, "#58")
	for _, r := range srv.Requests() {
		if strings.HasSuffix(r.Path, "/branches") {
			t.Errorf("a #58 lookup listed branches: %s", r.Path)
		}
	}
}

func TestFindAmbiguous(t *testing.T) {
	t.Parallel()
	srv, src := setup(t, githubtest.Options{}, "")
	seed(srv)

	// A few matches: all listed, branches without a pull request too.
	found := find(t, src, "PROJ-1")
	if len(found) != 0 {
		t.Errorf("PROJ-1 is a ticket id and matches none of PROJ-1234, PROJ-1240, PROJ-1301; found %v", names(found))
	}
	found = find(t, src, "feature")
	_, err := switchboard.PickBranch("feature", found)
	msg := switchboard.ErrorMessage(err)
	for _, want := range []string{"• feature/PROJ-1234-login-fix — PR #57: Fix login timeouts", "• feature/old (" + sha("old")[:7] + ", no pull request)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "more.") {
		t.Errorf("fewer than 11 matches need no tail:\n%s", msg)
	}

	for i := range 14 {
		n := 100 + i
		srv.AddPullRequests(githubtest.PullRequest{Number: n, Title: fmt.Sprintf("Widget %d", i), Branch: fmt.Sprintf("feature/PROJ-2%03d-widget", i), SHA: sha(fmt.Sprint(n))})
	}

	found = find(t, src, "widget")
	if len(found) != 14 {
		t.Fatalf("widget found %d, want 14: %v", len(found), names(found))
	}
	_, err = switchboard.PickBranch("widget", found)
	if code := switchboard.ErrorCode(err); code != switchboard.EINVALID {
		t.Fatalf("code %q, want %q", code, switchboard.EINVALID)
	}
	msg = switchboard.ErrorMessage(err)
	lines := strings.Split(msg, "\n")
	if len(lines) != 1+switchboard.MaxListedBranches+1 {
		t.Fatalf("%d lines, want a head, 10 branches and a tail:\n%s", len(lines), msg)
	}
	if want := `"widget" matches 14 branches; say which one by its full name or PR number:`; lines[0] != want {
		t.Errorf("head %q, want %q", lines[0], want)
	}
	// Newest first: #113 was opened last.
	if want := "• feature/PROJ-2013-widget — PR #113: Widget 13"; lines[1] != want {
		t.Errorf("first %q, want %q", lines[1], want)
	}
	if want := "• and 4 more."; lines[len(lines)-1] != want {
		t.Errorf("tail %q, want %q", lines[len(lines)-1], want)
	}
}

func TestFindNoMatch(t *testing.T) {
	t.Parallel()
	srv, src := setup(t, githubtest.Options{}, "")
	seed(srv)
	for _, q := range []string{"payments", "#99", "99", "123", "PROJ-123", "PROJ-12345", "old idea"} {
		found := find(t, src, q)
		if len(found) != 0 {
			t.Errorf("%q found %v, want nothing", q, names(found))
			continue
		}
		_, err := switchboard.PickBranch(q, found)
		if code := switchboard.ErrorCode(err); code != switchboard.ENOTFOUND {
			t.Errorf("%q: code %q, want %q", q, code, switchboard.ENOTFOUND)
		}
	}
	_, err := switchboard.PickBranch("payments", nil)
	want := `No open pull request or branch matches "payments". Try part of the branch name, a ticket id like PROJ-1234, or a PR number like #57.`
	if got := switchboard.ErrorMessage(err); got != want {
		t.Errorf("message\n%q, want\n%q", got, want)
	}

	srv.ClearRequests()
	if found := find(t, src, "  "); found != nil {
		t.Errorf("an empty query found %v", names(found))
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("an empty query made %d requests", n)
	}
	if _, err := switchboard.PickBranch(" ", nil); switchboard.ErrorCode(err) != switchboard.EINVALID {
		t.Errorf("an empty query: %v, want EINVALID", err)
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	srv, src := setup(t, githubtest.Options{}, "")
	// 150 pull requests, newest first: #1..#50 are on page 2. 250
	// branches by name: zz-* are on page 3.
	for n := 1; n <= 150; n++ {
		srv.AddPullRequests(githubtest.PullRequest{Number: n, Title: fmt.Sprintf("Change %d", n), Branch: fmt.Sprintf("feature/PROJ-%d-change", 5000+n), SHA: sha(fmt.Sprint(n))})
	}
	for i := range 250 {
		name := fmt.Sprintf("aa-%03d", i)
		if i >= 240 {
			name = fmt.Sprintf("zz-%03d", i)
		}
		srv.AddBranches(githubtest.Branch{Name: name, SHA: sha(name)})
	}

	b, err := switchboard.PickBranch("PROJ-5003", find(t, src, "PROJ-5003"))
	if err != nil || b.PR != 3 {
		t.Fatalf("PROJ-5003 (page 2 of the pull requests): %+v, %v", b, err)
	}
	b, err = switchboard.PickBranch("zz-245", find(t, src, "zz-245"))
	if err != nil || b.Name != "zz-245" {
		t.Fatalf("zz-245 (page 3 of the branches): %+v, %v", b, err)
	}

	pages := map[string][]string{}
	for _, r := range srv.Requests() {
		if r.Query.Get("per_page") != "100" {
			t.Errorf("%s asked for %q a page, want 100", r.Path, r.Query.Get("per_page"))
		}
		kind := r.Path[strings.LastIndex(r.Path, "/")+1:]
		pages[kind] = append(pages[kind], r.Query.Get("page"))
	}
	if got := strings.Join(pages["pulls"], ","); got != ",2,,2" {
		t.Errorf("pull request pages %q, want the first (no page=) and 2, twice", got)
	}
	if got := strings.Join(pages["branches"], ","); got != ",2,3,,2,3" {
		t.Errorf("branch pages %q, want the first, 2 and 3, twice", got)
	}
}

func TestSecondLookupIsAnswered304(t *testing.T) {
	t.Parallel()
	for _, token := range []string{"ghp_test", ""} {
		srv, src := setup(t, githubtest.Options{}, token)
		seed(srv)
		authorized := token != ""

		first := find(t, src, "login-fix")
		firstRequests := len(srv.Requests())
		remaining := srv.Remaining(authorized)
		srv.ClearRequests()

		second := find(t, src, "login-fix")
		if fmt.Sprint(second) != fmt.Sprint(first) {
			t.Errorf("token %v: second lookup %v, first %v", authorized, second, first)
		}
		reqs := srv.Requests()
		if len(reqs) != firstRequests {
			t.Errorf("token %v: second lookup made %d requests, first %d", authorized, len(reqs), firstRequests)
		}
		for _, r := range reqs {
			if r.IfNoneMatch == "" || r.Status != http.StatusNotModified {
				t.Errorf("token %v: %s: If-None-Match %q, status %d; want the ETag sent and 304", authorized, r.Path, r.IfNoneMatch, r.Status)
			}
		}
		if authorized {
			// GitHub counts no 304 to a token.
			if got := srv.Remaining(true); got != remaining {
				t.Errorf("remaining went from %d to %d over a lookup answered 304", remaining, got)
			}
		} else if got := srv.Remaining(false); got != remaining-len(reqs) {
			// GitHub counts an anonymous 304, by its REST guide.
			t.Errorf("anonymous: remaining %d after %d requests, want %d", got, len(reqs), remaining-len(reqs))
		}

		// A change is seen at once: the ETag no longer matches.
		srv.AddPullRequests(githubtest.PullRequest{Number: 70, Title: "Login fix, part 2", Branch: "feature/PROJ-1235-login-fix-2", SHA: sha("login2")})
		if got := names(find(t, src, "login-fix")); len(got) != 2 {
			t.Errorf("token %v: after a new pull request login-fix found %v, want 2", authorized, got)
		}
	}
}

func TestRateLimited(t *testing.T) {
	t.Parallel()
	reset := time.Now().Add(37*time.Minute + 10*time.Second).Truncate(time.Second)
	clock := reset.UTC().Truncate(time.Minute).Add(time.Minute).Format("15:04")

	for _, token := range []string{"", "ghp_test"} {
		srv, src := setup(t, githubtest.Options{Reset: reset}, token)
		seed(srv)
		srv.SetFailure(githubtest.FailRateLimited)
		found, err := src.FindBranches(context.Background(), "1234")
		if found != nil {
			t.Errorf("rate limited, yet found %v", names(found))
		}
		if code := switchboard.ErrorCode(err); code != switchboard.ETHROTTLED {
			t.Fatalf("code %q (%v), want %q", code, err, switchboard.ETHROTTLED)
		}
		want := "GitHub's rate limit is used up until " + clock + " UTC; try again then (set github.token for 5,000 requests an hour)."
		if token != "" {
			want = "GitHub's rate limit is used up until " + clock + " UTC; try again then."
		}
		if got := switchboard.ErrorMessage(err); got != want {
			t.Errorf("message\n%q, want\n%q", got, want)
		}
		var e *switchboard.Error
		if !errors.As(err, &e) || e.RetryAfter < 36*time.Minute || e.RetryAfter > 38*time.Minute {
			t.Errorf("RetryAfter %v, want about 37m", e.RetryAfter)
		}
		if wait, transient := switchboard.Retryable(err); transient || wait < 36*time.Minute {
			t.Errorf("Retryable = %v, %v; want the wait until the reset", wait, transient)
		}
	}
}

func TestBudgetUsedUpMidLookup(t *testing.T) {
	t.Parallel()
	srv, src := setup(t, githubtest.Options{Limit: 3}, "")
	seed(srv)
	find(t, src, "login-fix") // pulls and branches: 2 of 3

	// The pulls page is the last request of the budget; go-github then
	// knows it is used up and does not ask for the branches at all.
	srv.ClearRequests()
	_, err := src.FindBranches(context.Background(), "login-fix")
	if code := switchboard.ErrorCode(err); code != switchboard.ETHROTTLED {
		t.Fatalf("code %q (%v), want %q", code, err, switchboard.ETHROTTLED)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Errorf("%d requests, want 1: nothing is sent once the budget is known to be used up", n)
	}
	_, err = src.FindBranches(context.Background(), "#57")
	if switchboard.ErrorCode(err) != switchboard.ETHROTTLED || len(srv.Requests()) != 1 {
		t.Errorf("a later lookup: %v after %d requests; want ETHROTTLED with none sent", err, len(srv.Requests()))
	}
}

func TestSecondaryRateLimit(t *testing.T) {
	t.Parallel()
	srv, src := setup(t, githubtest.Options{}, "ghp_test")
	seed(srv)
	srv.SetFailure(githubtest.FailSecondaryRateLimit)
	_, err := src.FindBranches(context.Background(), "1234")
	var e *switchboard.Error
	if !errors.As(err, &e) || e.Code != switchboard.ETHROTTLED || e.RetryAfter < 59*time.Second || e.RetryAfter > 61*time.Second {
		t.Fatalf("%v, want ETHROTTLED with RetryAfter 60s", err)
	}
	if !strings.HasPrefix(e.Message, "GitHub's rate limit is used up until ") {
		t.Errorf("message %q", e.Message)
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		server  githubtest.Options
		failure githubtest.Failure
		repo    string
		token   string
		closed  bool
		code    string
		msg     string
	}{
		{name: "502", failure: githubtest.FailBadGateway, code: switchboard.EUNAVAILABLE,
			msg: "GitHub did not answer (502 Bad Gateway) to list the open pull requests of octo-org/octo-app; try again in a few minutes."},
		{name: "no answer", closed: true, code: switchboard.EUNAVAILABLE,
			msg: "Could not reach GitHub to list the open pull requests of octo-org/octo-app; try again in a few minutes."},
		{name: "bad token", server: githubtest.Options{Token: "ghp_right"}, token: "ghp_wrong", code: switchboard.EUNAUTHORIZED,
			msg: "GitHub did not accept github.token (Bad credentials); check that the token is valid, has not expired, and may read octo-org/octo-app."},
		{name: "no repository", repo: "octo-org/missing", code: switchboard.ENOTFOUND,
			msg: "GitHub has no public repository octo-org/missing; check github.repository, or set github.token if the repository is private."},
		{name: "no repository with a token", repo: "octo-org/missing", token: "ghp_test", code: switchboard.ENOTFOUND,
			msg: "GitHub has no repository octo-org/missing that github.token can see; check github.repository and the token's access."},
		{name: "private", server: githubtest.Options{Private: true}, code: switchboard.ENOTFOUND,
			msg: "GitHub has no public repository octo-org/octo-app; check github.repository, or set github.token if the repository is private."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := githubtest.NewServer(tt.server)
			t.Cleanup(srv.Close)
			seed(srv)
			srv.SetFailure(tt.failure)
			if tt.closed {
				srv.Close()
			}
			src, err := github.New(github.Options{Repository: cmpOr(tt.repo, repo), Token: tt.token, APIURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			found, err := src.FindBranches(context.Background(), "1234")
			if found != nil {
				t.Errorf("failed, yet found %v", names(found))
			}
			if code := switchboard.ErrorCode(err); code != tt.code {
				t.Errorf("code %q (%v), want %q", code, err, tt.code)
			}
			if got := switchboard.ErrorMessage(err); got != tt.msg {
				t.Errorf("message\n%q, want\n%q", got, tt.msg)
			}
		})
	}
}

func TestFailureOnALaterPageFailsTheLookup(t *testing.T) {
	t.Parallel()
	srv, src := setup(t, githubtest.Options{Limit: 2}, "")
	for n := 1; n <= 150; n++ {
		srv.AddPullRequests(githubtest.PullRequest{Number: n, Title: "Change", Branch: fmt.Sprintf("change-%d", n), SHA: sha(fmt.Sprint(n))})
	}
	srv.AddBranches(githubtest.Branch{Name: "change-150-hotfix", SHA: sha("hotfix")})
	// Page 1 and 2 of the pull requests use the budget up: the branches are
	// never read, so "change-150" must not be answered from what was.
	found, err := src.FindBranches(context.Background(), "change-150")
	if found != nil || switchboard.ErrorCode(err) != switchboard.ETHROTTLED {
		t.Errorf("found %v, %v; want nothing and ETHROTTLED", names(found), err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		opts github.Options
		want string // "" means valid
	}{
		{github.Options{Repository: "octo-org/octo-app"}, ""},
		{github.Options{Repository: "octo-org/octo.app_2", Token: "ghp_x", APIURL: "https://ghe.example.com"}, ""},
		{github.Options{}, "github.repository is empty: set it to OWNER/NAME"},
		{github.Options{Repository: "octo-app"}, `github.repository is "octo-app": set it to OWNER/NAME`},
		{github.Options{Repository: "https://github.com/octo-org/octo-app"}, "an address: set it to OWNER/NAME"},
		{github.Options{Repository: "octo-org/octo-app/pulls"}, "github.repository is"},
		{github.Options{Repository: "octo-org/octo-app", Token: "ghp_x\n"}, "github.token holds spaces or a line break"},
		{github.Options{Repository: "octo-org/octo-app", APIURL: "ghe.example.com"}, `github.api_url is "ghe.example.com"`},
		{github.Options{Repository: "octo-org/octo-app", APIURL: "ftp://ghe.example.com"}, "github.api_url is"},
	}
	for _, tt := range tests {
		err := tt.opts.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.opts, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: %v, want %q", tt.opts, err, tt.want)
		}
		if _, nerr := github.New(tt.opts); (nerr == nil) != (err == nil) {
			t.Errorf("%+v: New and Validate disagree: %v, %v", tt.opts, nerr, err)
		}
	}
	err := github.Options{Repository: "x", APIURL: ":"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "github.repository") || !strings.Contains(err.Error(), "github.api_url") {
		t.Errorf("every problem is reported: %v", err)
	}
}

func TestHTTPClientIsNotChanged(t *testing.T) {
	t.Parallel()
	srv, _ := setup(t, githubtest.Options{}, "")
	seed(srv)
	hc := &http.Client{Timeout: 5 * time.Second}
	src, err := github.New(github.Options{Repository: repo, Token: "ghp_test", APIURL: srv.URL, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	find(t, src, "1234")
	if hc.Transport != nil {
		t.Errorf("the caller's client got a transport: %T", hc.Transport)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
