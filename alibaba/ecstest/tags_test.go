package ecstest_test

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/alibaba/ecstest"
)

func TestTagResources(t *testing.T) {
	t.Parallel()
	srv := ecstest.NewServer(ecstest.Options{Instances: []ecstest.Instance{
		{ID: "i-bp1aaaa", Tags: map[string]string{"env": "prod", "pin": "alice"}},
		{ID: "i-bp1bbbb"},
	}})
	t.Cleanup(srv.Close)
	status, body := get(t, srv, "TagResources", url.Values{
		"ResourceType": {"instance"}, "ResourceId.1": {"i-bp1aaaa"}, "ResourceId.2": {"i-bp1bbbb"},
		"Tag.1.Key": {"expiry"}, "Tag.1.Value": {"friday"}, "Tag.2.Key": {"pin"},
	})
	if status != http.StatusOK || len(body) != 1 || body["RequestId"] == "" {
		t.Fatalf("TagResources answered %d %v, want only a RequestId", status, body)
	}
	in, _ := srv.Instance("i-bp1aaaa")
	if want := map[string]string{"env": "prod", "expiry": "friday", "pin": ""}; !maps.Equal(in.Tags, want) {
		t.Errorf("tags %v, want %v: a value replaced, a missing value empty", in.Tags, want)
	}
	// DescribeInstances shows and filters by them.
	_, body = get(t, srv, "DescribeInstances", url.Values{"Tag.1.Key": {"expiry"}, "Tag.1.Value": {"friday"}})
	if n := body["TotalCount"]; n != 2.0 {
		t.Errorf("DescribeInstances by the new tag found %v instances, want 2", n)
	}

	status, _ = get(t, srv, "UntagResources", url.Values{"ResourceType": {"instance"}, "ResourceId.1": {"i-bp1aaaa"},
		"TagKey.1": {"pin"}, "TagKey.2": {"never-set"}})
	if in, _ := srv.Instance("i-bp1aaaa"); status != http.StatusOK || !maps.Equal(in.Tags, map[string]string{"env": "prod", "expiry": "friday"}) {
		t.Errorf("after UntagResources: %d, tags %v", status, in.Tags)
	}
	status, _ = get(t, srv, "UntagResources", url.Values{"ResourceType": {"instance"}, "ResourceId.1": {"i-bp1aaaa"}, "All": {"true"}})
	if in, _ := srv.Instance("i-bp1aaaa"); status != http.StatusOK || len(in.Tags) != 0 {
		t.Errorf("after UntagResources All=true: %d, tags %v", status, in.Tags)
	}
}

func TestTagResourcesErrors(t *testing.T) {
	t.Parallel()
	srv := ecstest.NewServer(ecstest.Options{Instances: []ecstest.Instance{{ID: "i-bp1aaaa", Tags: map[string]string{"env": "prod"}}}})
	t.Cleanup(srv.Close)
	one := url.Values{"ResourceType": {"instance"}, "ResourceId.1": {"i-bp1aaaa"}}
	with := func(extra ...string) url.Values {
		v := url.Values{}
		for k, vs := range one {
			v[k] = vs
		}
		for i := 0; i < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return v
	}
	fifty1 := with("Tag.1.Key", "a")
	for i := 1; i <= 51; i++ {
		fifty1.Set(fmt.Sprintf("ResourceId.%d", i), "i-bp1aaaa")
	}
	tests := []struct {
		name   string
		action string
		params url.Values
		status int
		code   string
	}{
		{"no resource type", "TagResources", url.Values{"ResourceId.1": {"i-bp1aaaa"}, "Tag.1.Key": {"a"}}, http.StatusBadRequest, "MissingParameter"},
		{"unknown resource type", "TagResources", with("ResourceType", "bucket", "Tag.1.Key", "a"), http.StatusBadRequest, "InvalidResourceType.NotFound"},
		{"no resources", "TagResources", url.Values{"ResourceType": {"instance"}, "Tag.1.Key": {"a"}}, http.StatusBadRequest, "MissingParameter"},
		{"51 resources", "TagResources", fifty1, http.StatusBadRequest, "NumberExceed.ResourceIds"},
		{"unknown resource", "TagResources", with("ResourceId.2", "i-bp1nothere", "Tag.1.Key", "a"), http.StatusNotFound, "InvalidResourceId.NotFound"},
		{"no tags", "TagResources", with(), http.StatusBadRequest, "MissingParameter"},
		{"21 tags", "TagResources", with("Tag.21.Key", "a"), http.StatusBadRequest, "NumberExceed.Tags"},
		{"reserved key", "TagResources", with("Tag.1.Key", "acs:team"), http.StatusBadRequest, "InvalidTagKey.Malformed"},
		{"long key", "TagResources", with("Tag.1.Key", strings.Repeat("k", 129)), http.StatusBadRequest, "InvalidTagKey.Malformed"},
		{"value with a URL", "TagResources", with("Tag.1.Key", "a", "Tag.1.Value", "http://x"), http.StatusBadRequest, "InvalidTagValue.Malformed"},
		{"duplicate key", "TagResources", with("Tag.1.Key", "a", "Tag.2.Key", "a"), http.StatusBadRequest, "Duplicate.TagKey"},
		{"untag without keys", "UntagResources", with(), http.StatusBadRequest, "MissingParameter"},
		{"untag unknown resource", "UntagResources", with("ResourceId.1", "i-bp1nothere", "TagKey.1", "a"), http.StatusNotFound, "InvalidResourceId.NotFound"},
		{"untag 21 keys", "UntagResources", with("TagKey.21", "a"), http.StatusBadRequest, "NumberExceed.Tags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, body := get(t, srv, tt.action, tt.params)
			if status != tt.status || body["Code"] != tt.code {
				t.Errorf("answer = %d %v, want %d %s", status, body, tt.status, tt.code)
			}
		})
	}
	if in, _ := srv.Instance("i-bp1aaaa"); !maps.Equal(in.Tags, map[string]string{"env": "prod"}) {
		t.Errorf("tags after the refused calls: %v", in.Tags)
	}
}
