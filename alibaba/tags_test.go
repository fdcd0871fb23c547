package alibaba_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/alibaba/ecstest"
)

func TestTagInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, srv := setup(t, ecstest.Options{})
	if err := p.TagInstances(ctx, []string{web1, web2}, map[string]string{"expiry": "friday", "pin": "", "env": "pr-42"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"env": "pr-42", "role": "web", "expiry": "friday", "pin": ""}
	for _, id := range []string{web1, web2} {
		if got := describeOne(t, p, id).Tags; !maps.Equal(got, want) {
			t.Errorf("%s: tags %v, want %v", id, got, want)
		}
	}
	calls := srv.CallsTo("TagResources")
	if len(calls) != 1 {
		t.Fatalf("%d TagResources calls, want 1", len(calls))
	}
	q := calls[0].Params
	for k, v := range map[string]string{
		"ResourceType": "instance", "ResourceId.1": web1, "ResourceId.2": web2,
		"Tag.1.Key": "env", "Tag.1.Value": "pr-42", "Tag.2.Key": "expiry", "Tag.2.Value": "friday", "Tag.3.Key": "pin",
	} {
		if q.Get(k) != v {
			t.Errorf("TagResources sent %s=%q, want %q", k, q.Get(k), v)
		}
	}
	// The SDK leaves empty parameters out: an empty value is a key alone.
	if q.Has("Tag.3.Value") {
		t.Errorf("TagResources sent Tag.3.Value=%q, want it left out", q.Get("Tag.3.Value"))
	}

	if err := p.UntagInstances(ctx, []string{web1, web2}, []string{"pin", "expiry", "pin", "never-set"}); err != nil {
		t.Fatal(err)
	}
	if got := describeOne(t, p, web2).Tags; !maps.Equal(got, map[string]string{"env": "pr-42", "role": "web"}) {
		t.Errorf("after the untag: %v", got)
	}
	q = srv.CallsTo("UntagResources")[0].Params
	if q.Get("TagKey.1") != "pin" || q.Get("TagKey.2") != "expiry" || q.Get("TagKey.3") != "never-set" || q.Has("TagKey.4") || q.Has("All") {
		t.Errorf("UntagResources sent %v, want each key once and no All", q)
	}
}

func TestTagInstancesInCallsOf50(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	instances := make([]ecstest.Instance, 120)
	for i := range instances {
		instances[i] = ecstest.Instance{ID: fmt.Sprintf("i-bp1%017d", i)}
	}
	p, srv := setup(t, ecstest.Options{Instances: instances})
	all := make([]string, len(instances))
	for i, in := range instances {
		all[i] = in.ID
	}
	if err := p.TagInstances(ctx, all, map[string]string{"pin": "x"}); err != nil {
		t.Fatal(err)
	}
	if err := p.UntagInstances(ctx, all, []string{"pin"}); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"TagResources", "UntagResources"} {
		var sizes []int
		for _, c := range srv.CallsTo(action) {
			n := 0
			for k := range c.Params {
				if strings.HasPrefix(k, "ResourceId.") {
					n++
				}
			}
			sizes = append(sizes, n)
		}
		if fmt.Sprint(sizes) != "[50 50 20]" {
			t.Errorf("%s named %v instances per call, want [50 50 20]", action, sizes)
		}
	}
}

func TestTagInstancesErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tooMany := make(map[string]string)
	for i := range 21 {
		tooMany[fmt.Sprintf("k%d", i)] = "v"
	}
	t.Run("refused before any call", func(t *testing.T) {
		t.Parallel()
		p, srv := setup(t, ecstest.Options{})
		for name, err := range map[string]error{
			"no ids":      p.TagInstances(ctx, nil, map[string]string{"a": "b"}),
			"no tags":     p.TagInstances(ctx, []string{web1}, nil),
			"21 tags":     p.TagInstances(ctx, []string{web1}, tooMany),
			"empty key":   p.TagInstances(ctx, []string{web1}, map[string]string{"": "b"}),
			"no keys":     p.UntagInstances(ctx, []string{web1}, nil),
			"empty untag": p.UntagInstances(ctx, []string{web1}, []string{"a", ""}),
		} {
			if switchboard.ErrorCode(err) != switchboard.EINVALID {
				t.Errorf("%s: err = %v, want EINVALID", name, err)
			}
		}
		if n := len(srv.Calls()); n != 0 {
			t.Errorf("%d calls made, want none", n)
		}
	})
	t.Run("unknown id fails the call and names it", func(t *testing.T) {
		t.Parallel()
		p, srv := setup(t, ecstest.Options{})
		for _, err := range []error{
			p.TagInstances(ctx, []string{web1, gone}, map[string]string{"pin": "x"}),
			p.UntagInstances(ctx, []string{web1, gone}, []string{"env"}),
		} {
			ce := cloudError(t, err)
			if ce.Kind != switchboard.ENOTFOUND || fmt.Sprint(ce.IDs) != "["+gone+"]" {
				t.Errorf("err = %+v, want ENOTFOUND naming %s", ce, gone)
			}
		}
		if n := len(srv.CallsTo("TagResources")) + len(srv.CallsTo("UntagResources")); n != 0 {
			t.Errorf("%d tag calls made, want none", n)
		}
		if got := describeOne(t, p, web1).Tags; got["pin"] != "" || got["env"] != "prod" {
			t.Errorf("tags after the failed calls: %v", got)
		}
	})
	t.Run("ECS's answers", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name  string
			setup func(*ecstest.Server)
			tags  map[string]string
			kind  string
			code  string
		}{
			{"throttled", func(s *ecstest.Server) { s.Throttle("TagResources", 1) }, map[string]string{"a": "b"}, switchboard.ETHROTTLED, "Throttling.User"},
			{"denied", func(s *ecstest.Server) { s.Deny("TagResources") }, map[string]string{"a": "b"}, switchboard.EFORBIDDEN, "Forbidden.RAM"},
			{"malformed key", nil, map[string]string{"aliyun:team": "b"}, switchboard.EINVALID, "InvalidTagKey.Malformed"},
			{"malformed value", nil, map[string]string{"a": "see https://example.com"}, switchboard.EINVALID, "InvalidTagValue.Malformed"},
			{"quota", nil, map[string]string{"k1": "v", "k2": "v", "k3": "v", "k4": "v", "k5": "v", "k6": "v", "k7": "v", "k8": "v", "k9": "v",
				"k10": "v", "k11": "v", "k12": "v", "k13": "v", "k14": "v", "k15": "v", "k16": "v", "k17": "v", "k18": "v", "k19": "v"},
				switchboard.EINVALID, "OperationDenied.QuotaExceed"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				p, srv := setup(t, ecstest.Options{})
				if tt.setup != nil {
					tt.setup(srv)
				}
				ce := cloudError(t, p.TagInstances(ctx, []string{web1}, tt.tags))
				if ce.Kind != tt.kind || ce.Code != tt.code {
					t.Errorf("err = %+v, want %s (%s)", ce, tt.code, tt.kind)
				}
			})
		}
	})
}
