package testenv

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/go-chef/chef"
)

func TestGoiardi(t *testing.T) {
	t.Parallel()
	a, b := Goiardi(t), Goiardi(t)
	if a.URL == b.URL {
		t.Fatalf("two callers got the same server %s", a.URL)
	}
	if !strings.HasPrefix(a.URL, "http://127.0.0.1:") || !strings.HasSuffix(a.URL, "/") {
		t.Errorf("URL %q, want http://127.0.0.1:PORT/", a.URL)
	}

	key := a.CreateClient(t, "web-7", false)
	a.CreateNode(t, "web-7", map[string]any{"ec2": map[string]any{"instance_id": "i-0abc1234def567890"}})
	if !a.HasNode(t, "web-7") || !a.HasClient(t, "web-7") {
		t.Errorf("the node or client is missing on the server it was created on")
	}
	if b.HasNode(t, "web-7") || b.HasClient(t, "web-7") {
		t.Errorf("the node or client is on the other server too")
	}

	// The new client's key signs requests the server accepts; another
	// client's key does not.
	get := func(name, key, path string) error {
		c, err := chef.NewClient(&chef.Config{Name: name, Key: key, BaseURL: a.URL})
		if err != nil {
			t.Fatal(err)
		}
		req, err := c.NewRequest(http.MethodGet, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Do(req, nil)
		if res != nil {
			res.Body.Close()
		}
		return err
	}
	if err := get("web-7", key, "nodes/web-7"); err != nil {
		t.Errorf("GET nodes/web-7 as web-7: %v", err)
	}
	var cerr *chef.ErrorResponse
	if err := get("web-7", a.AdminKey, "nodes/web-7"); !errors.As(err, &cerr) || cerr.StatusCode() != http.StatusUnauthorized {
		t.Errorf("GET with another client's key = %v, want 401 (authentication is on)", err)
	}
	// CreateNode returns once the search index has the node.
	q := url.Values{"q": {`ec2_instance_id:i\-0abc1234def567890`}}
	var out struct {
		Total int `json:"total"`
	}
	if err := a.call(http.MethodGet, "search/node?"+q.Encode(), nil, &out); err != nil || out.Total != 1 {
		t.Errorf("search = %d nodes, %v; want 1", out.Total, err)
	}

	a.Stop()
	a.Stop() // twice is fine
	if err := get("web-7", key, "nodes/web-7"); err == nil || errors.As(err, &cerr) {
		t.Errorf("GET after Stop = %v, want no answer", err)
	}
}
