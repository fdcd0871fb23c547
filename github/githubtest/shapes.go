package githubtest

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The JSON shapes below follow GitHub's REST reference: "List pull
// requests" (pull-request-simple) and "List branches" (short-branch), with
// the fields a client reads and enough of the rest to look like GitHub.

type user struct {
	Login     string `json:"login"`
	ID        int    `json:"id"`
	NodeID    string `json:"node_id"`
	AvatarURL string `json:"avatar_url"`
	URL       string `json:"url"`
	HTMLURL   string `json:"html_url"`
	Type      string `json:"type"`
	SiteAdmin bool   `json:"site_admin"`
}

type repository struct {
	ID            int    `json:"id"`
	NodeID        string `json:"node_id"`
	Name          string `json:"name"`
	FullName      string `json:"full_name"`
	Owner         user   `json:"owner"`
	Private       bool   `json:"private"`
	HTMLURL       string `json:"html_url"`
	Description   string `json:"description"`
	Fork          bool   `json:"fork"`
	URL           string `json:"url"`
	DefaultBranch string `json:"default_branch"`
}

type ref struct {
	Label string      `json:"label"`
	Ref   string      `json:"ref"`
	SHA   string      `json:"sha"`
	User  user        `json:"user"`
	Repo  *repository `json:"repo"`
}

type link struct {
	Href string `json:"href"`
}

type pullRequest struct {
	URL                string    `json:"url"`
	ID                 int       `json:"id"`
	NodeID             string    `json:"node_id"`
	HTMLURL            string    `json:"html_url"`
	DiffURL            string    `json:"diff_url"`
	PatchURL           string    `json:"patch_url"`
	IssueURL           string    `json:"issue_url"`
	CommitsURL         string    `json:"commits_url"`
	Number             int       `json:"number"`
	State              string    `json:"state"`
	Locked             bool      `json:"locked"`
	Title              string    `json:"title"`
	User               user      `json:"user"`
	Body               *string   `json:"body"`
	Labels             []any     `json:"labels"`
	Milestone          any       `json:"milestone"`
	ActiveLockReason   any       `json:"active_lock_reason"`
	CreatedAt          string    `json:"created_at"`
	UpdatedAt          string    `json:"updated_at"`
	ClosedAt           *string   `json:"closed_at"`
	MergedAt           *string   `json:"merged_at"`
	MergeCommitSHA     *string   `json:"merge_commit_sha"`
	Assignee           any       `json:"assignee"`
	Assignees          []any     `json:"assignees"`
	RequestedReviewers []any     `json:"requested_reviewers"`
	RequestedTeams     []any     `json:"requested_teams"`
	Head               ref       `json:"head"`
	Base               ref       `json:"base"`
	Links              prLinks   `json:"_links"`
	AuthorAssociation  string    `json:"author_association"`
	AutoMerge          any       `json:"auto_merge"`
	Draft              bool      `json:"draft"`
	updated            time.Time // for sorting
	created            time.Time
}

type prLinks struct {
	Self           link `json:"self"`
	HTML           link `json:"html"`
	Issue          link `json:"issue"`
	Comments       link `json:"comments"`
	ReviewComments link `json:"review_comments"`
	ReviewComment  link `json:"review_comment"`
	Commits        link `json:"commits"`
	Statuses       link `json:"statuses"`
}

type shortBranch struct {
	Name   string `json:"name"`
	Commit struct {
		SHA string `json:"sha"`
		URL string `json:"url"`
	} `json:"commit"`
	Protected bool `json:"protected"`
}

const timeLayout = "2006-01-02T15:04:05Z"

func (s *Server) makeUser(base, login string) user {
	id := 583231
	for _, c := range login {
		id = id*31 + int(c)
	}
	id = id&0xffffff + 1
	return user{
		Login:     login,
		ID:        id,
		NodeID:    fmt.Sprintf("MDQ6VXNlcj%d", id),
		AvatarURL: fmt.Sprintf("https://avatars.githubusercontent.com/u/%d?v=4", id),
		URL:       base + "/users/" + login,
		HTMLURL:   strings.TrimSuffix(base, "/api/v3") + "/" + login,
		Type:      "User",
	}
}

func (s *Server) makeRepo(base, owner, name string, id int, fork bool) *repository {
	web := strings.TrimSuffix(base, "/api/v3")
	return &repository{
		ID:            id,
		NodeID:        fmt.Sprintf("MDEwOlJlcG9zaXRvcnk%d", id),
		Name:          name,
		FullName:      owner + "/" + name,
		Owner:         s.makeUser(base, owner),
		Private:       s.opts.Private,
		HTMLURL:       web + "/" + owner + "/" + name,
		Fork:          fork,
		URL:           base + "/repos/" + owner + "/" + name,
		DefaultBranch: "main",
	}
}

// listPulls answers "List pull requests": state (open, closed, all;
// default open), sort (created, updated; default created) and direction
// (default desc).
func (s *Server) listPulls(r *http.Request, base string) ([]any, error) {
	q := r.URL.Query()
	state := cmp.Or(q.Get("state"), "open")
	if state != "open" && state != "closed" && state != "all" {
		return nil, fmt.Errorf("state must be open, closed or all, not %q", state)
	}
	sortBy := cmp.Or(q.Get("sort"), "created")
	desc := q.Get("direction") != "asc"
	if q.Get("direction") == "" && sortBy != "created" {
		desc = false
	}
	if strings.HasPrefix(r.URL.Path, "/api/v3") {
		base += "/api/v3"
	}
	owner, name, _ := strings.Cut(s.opts.Repository, "/")
	baseRepo := s.makeRepo(base, owner, name, repoID, false)
	apiRepo := base + "/repos/" + s.opts.Repository
	web := strings.TrimSuffix(base, "/api/v3") + "/" + s.opts.Repository

	var out []pullRequest
	for _, p := range s.pulls {
		st := cmp.Or(p.State, "open")
		if state != "all" && st != state {
			continue
		}
		created := cmp.Or(p.CreatedAt, time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC).Add(time.Duration(p.Number)*time.Hour))
		updated := cmp.Or(p.UpdatedAt, created.Add(30*time.Minute))
		login := cmp.Or(p.User, "octocat")
		headOwner, headRepo := owner, baseRepo
		if p.Fork != "" {
			headOwner = p.Fork
			headRepo = s.makeRepo(base, p.Fork, name, repoID+p.Number, true)
		}
		n := fmt.Sprint(p.Number)
		pr := pullRequest{
			URL:                apiRepo + "/pulls/" + n,
			ID:                 1000000 + p.Number,
			NodeID:             "MDExOlB1bGxSZXF1ZXN0" + n,
			HTMLURL:            web + "/pull/" + n,
			DiffURL:            web + "/pull/" + n + ".diff",
			PatchURL:           web + "/pull/" + n + ".patch",
			IssueURL:           apiRepo + "/issues/" + n,
			CommitsURL:         apiRepo + "/pulls/" + n + "/commits",
			Number:             p.Number,
			State:              st,
			Title:              p.Title,
			User:               s.makeUser(base, login),
			Labels:             []any{},
			CreatedAt:          created.UTC().Format(timeLayout),
			UpdatedAt:          updated.UTC().Format(timeLayout),
			Assignees:          []any{},
			RequestedReviewers: []any{},
			RequestedTeams:     []any{},
			Head: ref{
				Label: headOwner + ":" + p.Branch,
				Ref:   p.Branch,
				SHA:   p.SHA,
				User:  s.makeUser(base, headOwner),
				Repo:  headRepo,
			},
			Base: ref{
				Label: owner + ":main",
				Ref:   "main",
				SHA:   "6dcb09b5b57875f334f61aebed695e2e4193db5e",
				User:  s.makeUser(base, owner),
				Repo:  baseRepo,
			},
			Links: prLinks{
				Self:           link{apiRepo + "/pulls/" + n},
				HTML:           link{web + "/pull/" + n},
				Issue:          link{apiRepo + "/issues/" + n},
				Comments:       link{apiRepo + "/issues/" + n + "/comments"},
				ReviewComments: link{apiRepo + "/pulls/" + n + "/comments"},
				ReviewComment:  link{apiRepo + "/pulls/comments{/number}"},
				Commits:        link{apiRepo + "/pulls/" + n + "/commits"},
				Statuses:       link{apiRepo + "/statuses/" + p.SHA},
			},
			AuthorAssociation: "MEMBER",
			Draft:             p.Draft,
			updated:           updated,
			created:           created,
		}
		if p.Fork != "" {
			pr.AuthorAssociation = "CONTRIBUTOR"
		}
		out = append(out, pr)
	}
	slices.SortStableFunc(out, func(a, b pullRequest) int {
		var c int
		if sortBy == "updated" {
			c = a.updated.Compare(b.updated)
		} else {
			c = a.created.Compare(b.created)
		}
		if c == 0 {
			c = cmp.Compare(a.Number, b.Number)
		}
		if desc {
			return -c
		}
		return c
	})
	items := make([]any, len(out))
	for i := range out {
		items[i] = out[i]
	}
	return items, nil
}

// listBranches answers "List branches", sorted by name as GitHub sorts them.
func (s *Server) listBranches(r *http.Request, base string) ([]any, error) {
	if strings.HasPrefix(r.URL.Path, "/api/v3") {
		base += "/api/v3"
	}
	bs := slices.Clone(s.branches)
	slices.SortFunc(bs, func(a, b Branch) int { return strings.Compare(a.Name, b.Name) })
	items := make([]any, len(bs))
	for i, b := range bs {
		var sb shortBranch
		sb.Name = b.Name
		sb.Commit.SHA = b.SHA
		sb.Commit.URL = base + "/repos/" + s.opts.Repository + "/commits/" + b.SHA
		sb.Protected = b.Protected
		items[i] = sb
	}
	return items, nil
}
