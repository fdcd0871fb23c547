// Package githubtest is a fake of GitHub's REST API for tests: an httptest
// server on 127.0.0.1 that answers the calls a branch lookup makes in the
// shapes GitHub's REST reference documents, so the github package and
// go-github under it run end to end without the network.
//
// It serves, for one repository (and under /api/v3 as GitHub Enterprise
// Server does):
//
//   - GET /repos/{owner}/{repo}/pulls: "List pull requests", with state,
//     sort, direction, per_page (default 30, at most 100) and page.
//   - GET /repos/{owner}/{repo}/branches: "List branches", with per_page
//     and page.
//   - the same under /repositories/{id}/..., the form GitHub writes in its
//     Link headers.
//
// Every list answer carries a weak ETag and a Link header (next, last,
// first, prev) when there is more than one page; a GET whose If-None-Match
// holds the current ETag is answered 304 Not Modified with no body. Every
// answer carries the X-RateLimit-* headers. The budget is kept per caller:
// anonymous requests share Options.Limit (60 an hour on GitHub), requests
// with a token Options.TokenLimit (5,000). A request counts against its
// budget unless it is answered 304 to a token, as GitHub's guide "Best
// practices for using the REST API" says: "Making a conditional request
// does not count against your primary rate limit if a 304 response is
// returned and the request was made while correctly authorized with an
// Authorization header." With the budget used up, the answer is 403 with
// X-RateLimit-Remaining: 0 and GitHub's message. SetFailure makes every
// answer a rate limit, a secondary rate limit or a 502.
package githubtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PullRequest is a pull request the fake serves.
type PullRequest struct {
	Number int
	Title  string
	// Branch is the head branch's name (head.ref), SHA its commit.
	Branch string
	SHA    string
	// User is the login of who opened it; default octocat.
	User string
	// Fork is the owner of the fork the head branch is in; empty for a
	// branch of the repository itself.
	Fork string
	// State is open (the default) or closed.
	State string
	Draft bool
	// CreatedAt and UpdatedAt default to a time derived from Number, so
	// that a higher number is newer.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Branch is a branch of the repository.
type Branch struct {
	Name      string
	SHA       string
	Protected bool
}

// Failure makes every answer fail one way.
type Failure int

const (
	// FailNone answers normally.
	FailNone Failure = iota
	// FailRateLimited answers 403 with X-RateLimit-Remaining: 0, as when
	// the primary rate limit is used up.
	FailRateLimited
	// FailSecondaryRateLimit answers 403 with Retry-After: 60 and the
	// secondary rate limit's documentation URL.
	FailSecondaryRateLimit
	// FailBadGateway answers 502 with GitHub's HTML error page.
	FailBadGateway
)

// Options configure a Server.
type Options struct {
	// Repository is OWNER/NAME; default octo-org/octo-app.
	Repository string
	// Token, when set, is the only token accepted: another one is answered
	// 401 Bad credentials. When empty any token is accepted.
	Token string
	// Private answers anonymous requests 404, as GitHub does for a private
	// repository.
	Private bool
	// Limit and TokenLimit are the hourly budgets of anonymous and token
	// requests; defaults 60 and 5,000.
	Limit      int
	TokenLimit int
	// Reset is when the budgets reset; default an hour after the server
	// starts, in whole seconds as GitHub sends it.
	Reset time.Time
}

// Request is a request the server saw.
type Request struct {
	Method      string
	Path        string
	Query       url.Values
	IfNoneMatch string
	Authorized  bool
	Status      int
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	URL  string
	opts Options
	srv  *httptest.Server

	mu        sync.Mutex
	pulls     []PullRequest
	branches  []Branch
	failure   Failure
	used      map[bool]int // by authorized
	requests  []Request
	requestID int
}

const repoID = 1296269

// NewServer starts a server; Close stops it.
func NewServer(opts Options) *Server {
	if opts.Repository == "" {
		opts.Repository = "octo-org/octo-app"
	}
	if opts.Limit == 0 {
		opts.Limit = 60
	}
	if opts.TokenLimit == 0 {
		opts.TokenLimit = 5000
	}
	if opts.Reset.IsZero() {
		opts.Reset = time.Now().Add(time.Hour).Truncate(time.Second)
	}
	s := &Server{opts: opts, used: map[bool]int{}}
	mux := http.NewServeMux()
	for _, prefix := range []string{"", "/api/v3"} {
		mux.HandleFunc("GET "+prefix+"/repos/{owner}/{repo}/pulls", s.handle(s.listPulls))
		mux.HandleFunc("GET "+prefix+"/repos/{owner}/{repo}/branches", s.handle(s.listBranches))
		mux.HandleFunc("GET "+prefix+"/repositories/{id}/pulls", s.handle(s.listPulls))
		mux.HandleFunc("GET "+prefix+"/repositories/{id}/branches", s.handle(s.listBranches))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Message: "Not Found", DocumentationURL: "https://docs.github.com/rest", Status: "404"})
	})
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// AddPullRequests adds pull requests.
func (s *Server) AddPullRequests(prs ...PullRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pulls = append(s.pulls, prs...)
}

// AddBranches adds branches.
func (s *Server) AddBranches(bs ...Branch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.branches = append(s.branches, bs...)
}

// SetFailure makes every answer from now on fail as f (FailNone: none).
func (s *Server) SetFailure(f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failure = f
}

// Remaining is what X-RateLimit-Remaining says now to anonymous callers
// (authorized false) or to callers with a token.
func (s *Server) Remaining(authorized bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit(authorized) - s.used[authorized]
}

// Requests returns the requests seen so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ClearRequests forgets the requests seen so far.
func (s *Server) ClearRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

func (s *Server) limit(authorized bool) int {
	if authorized {
		return s.opts.TokenLimit
	}
	return s.opts.Limit
}

// lister writes the items of one list, in order, for the request.
type lister func(r *http.Request, base string) ([]any, error)

// handle runs the checks every call shares (credentials, failures, the
// budget, the repository), then pages the list, sets its ETag and Link and
// answers 304 when the caller already has it.
func (s *Server) handle(list lister) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requestID++
		w.Header().Set("X-GitHub-Request-Id", fmt.Sprintf("F00D:%04X:%06X", s.requestID, s.requestID*7919))
		w.Header().Set("X-GitHub-Api-Version-Selected", "2022-11-28")
		w.Header().Set("X-GitHub-Media-Type", "github.v3; format=json")

		token, authorized := bearer(r.Header.Get("Authorization"))
		seen := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), IfNoneMatch: r.Header.Get("If-None-Match"), Authorized: authorized}
		status := s.serve(w, r, list, token, authorized)
		seen.Status = status
		s.requests = append(s.requests, seen)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, list lister, token string, authorized bool) int {
	if authorized && s.opts.Token != "" && token != s.opts.Token {
		return writeJSON(w, http.StatusUnauthorized, errorBody{Message: "Bad credentials", DocumentationURL: "https://docs.github.com/rest", Status: "401"})
	}
	switch s.failure {
	case FailBadGateway:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html><body><h1>Unicorn!</h1><p>We're having a really bad day. No server is currently available to service your request.</p></body></html>")
		return http.StatusBadGateway
	case FailSecondaryRateLimit:
		s.rateHeaders(w, authorized)
		w.Header().Set("Retry-After", "60")
		return writeJSON(w, http.StatusForbidden, errorBody{
			Message:          "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
			DocumentationURL: "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits",
			Status:           "403",
		})
	case FailRateLimited:
		s.used[authorized] = s.limit(authorized)
	}
	if s.used[authorized] >= s.limit(authorized) {
		s.rateHeaders(w, authorized)
		msg := "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)"
		if authorized {
			msg = "API rate limit exceeded for user ID 583231."
		}
		return writeJSON(w, http.StatusForbidden, errorBody{Message: msg, DocumentationURL: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api", Status: "403"})
	}

	if id := r.PathValue("id"); id != "" {
		if id != strconv.Itoa(repoID) {
			s.used[authorized]++
			s.rateHeaders(w, authorized)
			return writeJSON(w, http.StatusNotFound, errorBody{Message: "Not Found", DocumentationURL: "https://docs.github.com/rest", Status: "404"})
		}
	} else if !strings.EqualFold(r.PathValue("owner")+"/"+r.PathValue("repo"), s.opts.Repository) || s.opts.Private && !authorized {
		s.used[authorized]++
		s.rateHeaders(w, authorized)
		return writeJSON(w, http.StatusNotFound, errorBody{Message: "Not Found", DocumentationURL: "https://docs.github.com/rest/pulls/pulls#list-pull-requests", Status: "404"})
	}

	q := r.URL.Query()
	perPage, page := 30, 1
	if v, err := strconv.Atoi(q.Get("per_page")); err == nil && v > 0 {
		perPage = min(v, 100)
	}
	if v, err := strconv.Atoi(q.Get("page")); err == nil && v > 0 {
		page = v
	}
	base := "http://" + r.Host
	items, err := list(r, base)
	if err != nil {
		s.used[authorized]++
		s.rateHeaders(w, authorized)
		return writeJSON(w, http.StatusUnprocessableEntity, errorBody{Message: "Validation Failed", DocumentationURL: "https://docs.github.com/rest", Status: "422", Errors: []map[string]string{{"message": err.Error()}}})
	}
	from := min((page-1)*perPage, len(items))
	to := min(from+perPage, len(items))
	body, _ := json.Marshal(items[from:to])
	sum := sha256.Sum256(body)
	etag := `W/"` + hex.EncodeToString(sum[:16]) + `"`

	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Vary", "Accept, Authorization, Cookie, X-GitHub-OTP")
	if authorized {
		h.Set("Cache-Control", "private, max-age=60, s-maxage=60")
	} else {
		h.Set("Cache-Control", "public, max-age=60, s-maxage=60")
	}
	if matchETag(r.Header.Get("If-None-Match"), etag) {
		if !authorized {
			s.used[authorized]++
		}
		s.rateHeaders(w, authorized)
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified
	}
	s.used[authorized]++
	s.rateHeaders(w, authorized)
	if link := linkHeader(base, r, perPage, page, len(items)); link != "" {
		h.Set("Link", link)
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return http.StatusOK
}

func (s *Server) rateHeaders(w http.ResponseWriter, authorized bool) {
	h := w.Header()
	used := min(s.used[authorized], s.limit(authorized))
	h.Set("X-RateLimit-Limit", strconv.Itoa(s.limit(authorized)))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(s.limit(authorized)-used))
	h.Set("X-RateLimit-Used", strconv.Itoa(used))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(s.opts.Reset.Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
}

// linkHeader is GitHub's pagination Link header: the request's own query
// with another page, on the /repositories/{id} form of the path.
func linkHeader(base string, r *http.Request, perPage, page, total int) string {
	last := max((total+perPage-1)/perPage, 1)
	if last == 1 && page == 1 {
		return ""
	}
	path := r.URL.Path[strings.Index(r.URL.Path, "/repos"):]
	if rest, ok := strings.CutPrefix(path, "/repos/"); ok {
		parts := strings.SplitN(rest, "/", 3)
		path = fmt.Sprintf("/repositories/%d/%s", repoID, parts[2])
	}
	if strings.HasPrefix(r.URL.Path, "/api/v3") {
		path = "/api/v3" + path
	}
	at := func(p int, rel string) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		return fmt.Sprintf(`<%s%s?%s>; rel="%s"`, base, path, q.Encode(), rel)
	}
	var links []string
	if page > 1 {
		links = append(links, at(min(page-1, last), "prev"))
	}
	if page < last {
		links = append(links, at(page+1, "next"), at(last, "last"))
	}
	if page > 1 {
		links = append(links, at(1, "first"))
	}
	return strings.Join(links, ", ")
}

// matchETag compares If-None-Match with an ETag the weak way, as RFC 9110
// says a GET's If-None-Match is compared.
func matchETag(ifNoneMatch, etag string) bool {
	if ifNoneMatch == "" {
		return false
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, tag := range strings.Split(ifNoneMatch, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == want {
			return true
		}
	}
	return false
}

// bearer reads a token from an Authorization header ("Bearer T" or
// "token T", both of which GitHub accepts).
func bearer(h string) (string, bool) {
	for _, scheme := range []string{"Bearer ", "bearer ", "token ", "Token "} {
		if t, ok := strings.CutPrefix(h, scheme); ok && t != "" {
			return t, true
		}
	}
	return "", false
}

type errorBody struct {
	Message          string              `json:"message"`
	DocumentationURL string              `json:"documentation_url"`
	Status           string              `json:"status"`
	Errors           []map[string]string `json:"errors,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
	return status
}
