package aws

import (
	"encoding/base64"
	"errors"
	"slices"
	"testing"

	"github.com/switchboardhq/switchboard"
)

func switchboardLaunch(image string, tags map[string]string, count int) switchboard.LaunchSpec {
	return switchboard.LaunchSpec{ImageID: image, Tags: tags, Count: count}
}

func filterTags(tags map[string]string) switchboard.Filter { return switchboard.Filter{Tags: tags} }

func filterIDs(ids ...string) switchboard.Filter { return switchboard.Filter{IDs: ids} }

func stopOpts(force, hibernate bool) switchboard.StopOptions {
	return switchboard.StopOptions{Force: force, Hibernate: hibernate}
}

func ids(in []switchboard.Instance) []string {
	out := make([]string, len(in))
	for i, x := range in {
		out[i] = x.ID
	}
	return out
}

func base64Decode(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	return string(b), err
}

func assertStates(t *testing.T, p *Provider, ids []string, want switchboard.InstanceState) {
	t.Helper()
	got, err := p.DescribeInstances(t.Context(), switchboard.Filter{IDs: ids})
	if err != nil {
		t.Fatalf("DescribeInstances: %v", err)
	}
	if len(got) != len(ids) {
		t.Fatalf("DescribeInstances(%v) found %d instances", ids, len(got))
	}
	for _, in := range got {
		if in.State != want {
			t.Errorf("%s is %s, want %s", in.ID, in.State, want)
		}
	}
}

func describeOne(t *testing.T, p *Provider, id string) switchboard.Instance {
	t.Helper()
	got, err := p.DescribeInstances(t.Context(), switchboard.Filter{IDs: []string{id}})
	if err != nil || len(got) != 1 {
		t.Fatalf("DescribeInstances(%s) = %v, %v; want one instance", id, got, err)
	}
	return got[0]
}

// assertCloudError checks err is a CloudError with the cloud's code, the
// domain's kind, and, when ids is not nil, those ids.
func assertCloudError(t *testing.T, err error, code, kind string, ids []string) {
	t.Helper()
	var ce *switchboard.CloudError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T), want a CloudError %s", err, err, code)
	}
	if ce.Code != code || ce.Kind != kind {
		t.Errorf("CloudError %s/%s (%q), want %s/%s", ce.Code, ce.Kind, ce.Message, code, kind)
	}
	if ids != nil && !slices.Equal(ce.IDs, ids) {
		t.Errorf("CloudError names %v, want %v", ce.IDs, ids)
	}
	if switchboard.ErrorCode(err) != kind {
		t.Errorf("switchboard.ErrorCode = %s, want %s", switchboard.ErrorCode(err), kind)
	}
}
