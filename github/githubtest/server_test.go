package githubtest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/github/githubtest"
)

// get sends a GET and decodes a 200's list; resp.Body can be read again.
func get(t *testing.T, url string, header map[string]string) (*http.Response, []map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	var list []map[string]any
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatalf("%s: not a JSON list: %v", url, err)
		}
	}
	return resp, list
}

func TestListShapesAndPagination(t *testing.T) {
	t.Parallel()
	reset := time.Now().Add(time.Hour).Truncate(time.Second)
	srv := githubtest.NewServer(githubtest.Options{Reset: reset})
	t.Cleanup(srv.Close)
	for n := 1; n <= 5; n++ {
		srv.AddPullRequests(githubtest.PullRequest{Number: n, Title: fmt.Sprint("PR ", n), Branch: fmt.Sprint("b", n), SHA: strings.Repeat(fmt.Sprint(n), 40)})
	}
	srv.AddPullRequests(githubtest.PullRequest{Number: 6, Title: "closed", Branch: "b6", SHA: strings.Repeat("6", 40), State: "closed"})

	resp, list := get(t, srv.URL+"/repos/octo-org/octo-app/pulls?state=open&per_page=2&page=2", nil)
	if resp.StatusCode != http.StatusOK || len(list) != 2 {
		t.Fatalf("status %d, %d items", resp.StatusCode, len(list))
	}
	// Newest first: page 2 of 2 a page is #3, #2.
	if list[0]["number"] != 3.0 || list[1]["number"] != 2.0 {
		t.Errorf("page 2 holds #%v, #%v; want #3, #2", list[0]["number"], list[1]["number"])
	}
	head := list[0]["head"].(map[string]any)
	if head["ref"] != "b3" || head["label"] != "octo-org:b3" || head["repo"].(map[string]any)["full_name"] != "octo-org/octo-app" {
		t.Errorf("head %v", head)
	}
	if list[0]["html_url"] != srv.URL+"/octo-org/octo-app/pull/3" || list[0]["user"].(map[string]any)["login"] != "octocat" {
		t.Errorf("pull %v", list[0])
	}
	base := srv.URL + "/repositories/1296269/pulls?"
	wantLink := `<` + base + `page=1&per_page=2&state=open>; rel="prev", <` + base + `page=3&per_page=2&state=open>; rel="next", <` +
		base + `page=3&per_page=2&state=open>; rel="last", <` + base + `page=1&per_page=2&state=open>; rel="first"`
	if got := resp.Header.Get("Link"); got != wantLink {
		t.Errorf("Link\n%s, want\n%s", got, wantLink)
	}
	// The Link target is served too.
	if resp, list := get(t, base+"page=3&per_page=2&state=open", nil); resp.StatusCode != http.StatusOK || len(list) != 1 || resp.Header.Get("Link") == "" {
		t.Errorf("last page: %d, %d items, Link %q", resp.StatusCode, len(list), resp.Header.Get("Link"))
	}
	if got := resp.Header.Get("X-RateLimit-Reset"); got != strconv.FormatInt(reset.Unix(), 10) {
		t.Errorf("X-RateLimit-Reset %q", got)
	}
	if resp.Header.Get("X-RateLimit-Limit") != "60" || resp.Header.Get("X-RateLimit-Remaining") != "59" || resp.Header.Get("X-RateLimit-Used") != "1" {
		t.Errorf("rate headers %v", resp.Header)
	}

	// GitHub Enterprise Server's prefix.
	if resp, list := get(t, srv.URL+"/api/v3/repos/octo-org/octo-app/pulls?state=all", nil); resp.StatusCode != http.StatusOK || len(list) != 6 {
		t.Errorf("/api/v3 with state=all: %d, %d items", resp.StatusCode, len(list))
	}
	if resp, _ := get(t, srv.URL+"/repos/octo-org/other/pulls", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another repository: %d, want 404", resp.StatusCode)
	}
}

func TestConditionalRequestsAndBudget(t *testing.T) {
	t.Parallel()
	srv := githubtest.NewServer(githubtest.Options{Limit: 3})
	t.Cleanup(srv.Close)
	srv.AddBranches(githubtest.Branch{Name: "main", SHA: strings.Repeat("a", 40), Protected: true})
	url := srv.URL + "/repos/octo-org/octo-app/branches"

	resp, list := get(t, url, nil)
	etag := resp.Header.Get("ETag")
	if !strings.HasPrefix(etag, `W/"`) || len(list) != 1 || list[0]["name"] != "main" || list[0]["protected"] != true {
		t.Fatalf("ETag %q, %v", etag, list)
	}
	if c := list[0]["commit"].(map[string]any); c["sha"] != strings.Repeat("a", 40) {
		t.Errorf("commit %v", c)
	}

	// A token's 304 is free; an anonymous one is not.
	resp, _ = get(t, url, map[string]string{"If-None-Match": etag, "Authorization": "Bearer ghp_x"})
	if resp.StatusCode != http.StatusNotModified || srv.Remaining(true) != 5000 || resp.Header.Get("X-RateLimit-Remaining") != "5000" {
		t.Errorf("token 304: %d, remaining %d", resp.StatusCode, srv.Remaining(true))
	}
	resp, _ = get(t, url, map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified || srv.Remaining(false) != 1 {
		t.Errorf("anonymous 304: %d, remaining %d, want 1", resp.StatusCode, srv.Remaining(false))
	}

	get(t, url, nil)
	resp, _ = get(t, url, nil)
	var body struct {
		Message          string `json:"message"`
		DocumentationURL string `json:"documentation_url"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("over budget: %d, remaining %q; want 403 and 0", resp.StatusCode, resp.Header.Get("X-RateLimit-Remaining"))
	}
	if !strings.HasPrefix(body.Message, "API rate limit exceeded for ") || !strings.Contains(body.DocumentationURL, "rate-limits") {
		t.Errorf("over budget body %+v", body)
	}

	srv.SetFailure(githubtest.FailBadGateway)
	if resp, _ := get(t, url, map[string]string{"Authorization": "Bearer ghp_x"}); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("FailBadGateway: %d", resp.StatusCode)
	}
	if n := len(srv.Requests()); n != 6 {
		t.Errorf("%d requests recorded, want 6", n)
	}
}
