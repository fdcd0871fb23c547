// Package github is Switchboard's branch source on GitHub (and GitHub
// Enterprise Server): it finds the branch a `/deploy 1234` means among a
// repository's open pull requests and branches, through
// github.com/google/go-github, and matches with switchboard.MatchBranches
// like every other source.
//
// A lookup lists every open pull request and every branch (100 to a page,
// all pages): a match on page 7 counts as much as one on page 1, and a
// lookup that could not read every page fails instead of answering from
// part of the list. A "#57" lookup reads only the pull requests.
//
// Anonymous use has 60 requests an hour, a token 5,000, and a lookup costs
// one request per page. Every GET is conditional (If-None-Match with the
// ETag of the last answer, kept in memory), so an unchanged page is answered
// 304 and served from the kept copy. GitHub counts no 304 against a token's
// budget; an anonymous 304 still counts (GitHub's REST guide, "Use
// conditional requests"), so without a token the cache saves transfer, not
// budget. When the budget is used up the lookup fails with ETHROTTLED and
// the time GitHub said it resets, and go-github sends nothing more until
// then.
package github

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	gh "github.com/google/go-github/v92/github"

	"github.com/switchboardhq/switchboard"
)

// DefaultAPIURL is GitHub's REST API.
const DefaultAPIURL = "https://api.github.com/"

// perPage is the largest page GitHub serves.
const perPage = 100

// Options configure a Source. The option names in errors (github.repository,
// github.token, github.api_url) are the configuration keys.
type Options struct {
	// Repository is OWNER/NAME, such as switchboardhq/switchboard. Required.
	Repository string
	// Token is a GitHub token that may read the repository: optional for a
	// public one, where it lifts the budget from 60 requests an hour to
	// 5,000.
	Token string
	// APIURL is the REST API's address: empty for GitHub.com, the server's
	// address for GitHub Enterprise Server (https://ghe.example.com, to
	// which /api/v3/ is added as go-github does), or a test server's.
	APIURL string
	// HTTPClient carries the requests: its Transport and Timeout. Nil means
	// a client with a 30 second timeout. It is copied, never changed.
	HTTPClient *http.Client
}

var (
	ownerPattern = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`)
	namePattern  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
)

// Validate reports every option that cannot work, naming it and saying
// what would.
func (o Options) Validate() error {
	var errs []error
	switch owner, name, ok := strings.Cut(o.Repository, "/"); {
	case o.Repository == "":
		errs = append(errs, errors.New("github.repository is empty: set it to OWNER/NAME, like switchboardhq/switchboard"))
	case strings.Contains(o.Repository, "://") || strings.HasPrefix(o.Repository, "git@"):
		errs = append(errs, fmt.Errorf("github.repository is %q, an address: set it to OWNER/NAME, like switchboardhq/switchboard", o.Repository))
	case !ok || !ownerPattern.MatchString(owner) || !namePattern.MatchString(name) || name == "." || name == "..":
		errs = append(errs, fmt.Errorf("github.repository is %q: set it to OWNER/NAME, like switchboardhq/switchboard", o.Repository))
	}
	if strings.ContainsFunc(o.Token, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		errs = append(errs, errors.New("github.token holds spaces or a line break: set it to the token alone (a file read with ${file:...} may end in a newline)"))
	}
	if o.APIURL != "" {
		u, err := url.Parse(o.APIURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("github.api_url is %q: set it to the API's http(s) address, like https://ghe.example.com for GitHub Enterprise Server, or leave it out for GitHub.com", o.APIURL))
		}
	}
	return errors.Join(errs...)
}

// Source finds branches in one GitHub repository. It is safe for
// concurrent use.
type Source struct {
	client      *gh.Client
	owner, name string
	repo        string // OWNER/NAME
	anonymous   bool
	web         string // the web address repository pages are under, without a trailing slash
}

var _ switchboard.BranchSource = (*Source)(nil)

// New returns a Source for opts.Repository. It makes no request.
func New(opts Options) (*Source, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		hc = &c
	}
	hc.Transport = newETagCache(hc.Transport)

	clientOpts := []gh.ClientOptionsFunc{
		gh.WithHTTPClient(hc),
		gh.WithUserAgent("switchboard/" + switchboard.Version),
	}
	if opts.Token != "" {
		clientOpts = append(clientOpts, gh.WithAuthToken(opts.Token))
	}
	api := cmp.Or(opts.APIURL, DefaultAPIURL)
	if api != DefaultAPIURL {
		clientOpts = append(clientOpts, gh.WithEnterpriseURLs(api, api))
	}
	client, err := gh.NewClient(clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	owner, name, _ := strings.Cut(opts.Repository, "/")
	return &Source{
		client:    client,
		owner:     owner,
		name:      name,
		repo:      opts.Repository,
		anonymous: opts.Token == "",
		web:       webAddress(api),
	}, nil
}

// Repository is the OWNER/NAME the source reads.
func (s *Source) Repository() string { return s.repo }

// FindBranches returns the open pull requests and branches query matches
// (switchboard.MatchBranches), best first.
func (s *Source) FindBranches(ctx context.Context, query string) ([]switchboard.Branch, error) {
	if strings.TrimSpace(query) == "" {
		return nil, nil
	}
	var candidates []switchboard.Branch
	var err error
	if _, ok := switchboard.PRQuery(query); ok {
		candidates, err = s.pullRequests(ctx)
	} else {
		candidates, err = s.Branches(ctx)
	}
	if err != nil {
		return nil, err
	}
	return switchboard.MatchBranches(query, candidates), nil
}

// Branches lists every open pull request, newest first, then every branch
// of the repository that is not the head of one, by name.
func (s *Source) Branches(ctx context.Context) ([]switchboard.Branch, error) {
	pulls, err := s.pullRequests(ctx)
	if err != nil {
		return nil, err
	}
	withPR := make(map[string]bool, len(pulls))
	for _, b := range pulls {
		withPR[b.Name] = true
	}
	out := pulls
	opts := &gh.BranchListOptions{ListOptions: gh.ListOptions{PerPage: perPage}}
	for {
		page, resp, err := s.client.Repositories.ListBranches(ctx, s.owner, s.name, opts)
		if err != nil {
			return nil, s.failed(ctx, err, "list the branches of")
		}
		for _, b := range page {
			if withPR[b.GetName()] {
				continue
			}
			out = append(out, switchboard.Branch{
				Name:   b.GetName(),
				Commit: b.GetCommit().GetSHA(),
				URL:    s.web + "/" + s.repo + "/tree/" + escapePath(b.GetName()),
			})
		}
		if resp.NextPage <= opts.Page {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// pullRequests lists the open pull requests, newest first.
func (s *Source) pullRequests(ctx context.Context) ([]switchboard.Branch, error) {
	var out []switchboard.Branch
	opts := &gh.PullRequestListOptions{State: "open", ListOptions: gh.ListOptions{PerPage: perPage}}
	for {
		page, resp, err := s.client.PullRequests.List(ctx, s.owner, s.name, opts)
		if err != nil {
			return nil, s.failed(ctx, err, "list the open pull requests of")
		}
		for _, pr := range page {
			out = append(out, s.pullRequestBranch(pr))
		}
		if resp.NextPage <= opts.Page {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// pullRequestBranch is a pull request as a candidate. A pull request from a
// fork is named OWNER:BRANCH, as GitHub labels it: its branch is not one of
// this repository's, and may share a name with one (main).
func (s *Source) pullRequestBranch(pr *gh.PullRequest) switchboard.Branch {
	head := pr.GetHead()
	name := head.GetRef()
	if !strings.EqualFold(head.GetRepo().GetFullName(), s.repo) && head.GetLabel() != "" {
		name = head.GetLabel()
	}
	return switchboard.Branch{
		Name:      name,
		Commit:    head.GetSHA(),
		PR:        pr.GetNumber(),
		Title:     pr.GetTitle(),
		URL:       pr.GetHTMLURL(),
		Author:    pr.GetUser().GetLogin(),
		UpdatedAt: pr.GetUpdatedAt().Time,
	}
}

// webAddress is where GitHub serves repository pages for an API address:
// github.com for api.github.com, the server itself for GitHub Enterprise.
func webAddress(api string) string {
	u, err := url.Parse(api)
	if err != nil {
		return ""
	}
	if u.Host == "api.github.com" {
		return "https://github.com"
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v3")
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimSuffix(u.String(), "/")
}

// escapePath escapes each segment of a branch name for a URL path, keeping
// its slashes.
func escapePath(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
