package sim_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/sim"
)

func TestTagInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := setup(t, sim.Options{Instances: fleet()})
	both := []string{idRunning, idStopped}
	if err := c.TagInstances(ctx, both, map[string]string{"expiry": "friday", "pin": ""}); err != nil {
		t.Fatal(err)
	}
	if err := c.TagInstances(ctx, []string{idRunning}, map[string]string{"expiry": "monday", "Name": "pr-42"}); err != nil {
		t.Fatal(err)
	}
	got := describeOne(t, c, idRunning)
	want := map[string]string{"team": "web", "Name": "pr-42", "expiry": "monday", "pin": ""}
	if !maps.Equal(got.Tags, want) || got.Name != "pr-42" {
		t.Errorf("tagged twice: name %q, tags %v; want pr-42, %v", got.Name, got.Tags, want)
	}
	if got := describeOne(t, c, idStopped).Tags; got["expiry"] != "friday" || got["pin"] != "" {
		t.Errorf("the other instance: tags %v, want expiry=friday and an empty pin", got)
	}

	if err := c.UntagInstances(ctx, both, []string{"pin", "expiry", "never-set"}); err != nil {
		t.Fatal(err)
	}
	if got := describeOne(t, c, idStopped).Tags; !maps.Equal(got, map[string]string{"team": "web", "Name": "web-stopped"}) {
		t.Errorf("after the untag: %v, want the seeded tags back", got)
	}
	if err := c.UntagInstances(ctx, []string{idRunning}, []string{"Name"}); err != nil {
		t.Fatal(err)
	}
	if got := describeOne(t, c, idRunning); got.Name != "" {
		t.Errorf("without its Name tag the instance is named %q, want no name", got.Name)
	}

	// A terminated instance can be tagged while it is still visible.
	if err := c.TagInstances(ctx, []string{idTerminated}, map[string]string{"gone": "yes"}); err != nil {
		t.Errorf("tag of a terminated instance: %v", err)
	}
	if s := c.Stats(); s.Calls["CreateTags"] != 3 || s.Calls["DeleteTags"] != 2 {
		t.Errorf("stats %+v, want 3 CreateTags and 2 DeleteTags", s.Calls)
	}
}

func TestTagErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := setup(t, sim.Options{Instances: fleet()})
	many := make(map[string]string)
	for i := range 49 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	tests := []struct {
		name string
		err  error
		code string
		kind string
		ids  []string
	}{
		{"no ids", c.TagInstances(ctx, nil, map[string]string{"a": "b"}), "MissingParameter", switchboard.EINVALID, nil},
		{"no tags", c.TagInstances(ctx, []string{idRunning}, nil), "MissingParameter", switchboard.EINVALID, nil},
		{"no keys", c.UntagInstances(ctx, []string{idRunning}, nil), "MissingParameter", switchboard.EINVALID, nil},
		{"unknown", c.TagInstances(ctx, []string{idRunning, idUnknown}, map[string]string{"a": "b"}),
			"InvalidInstanceID.NotFound", switchboard.ENOTFOUND, []string{idUnknown}},
		{"unknown untag", c.UntagInstances(ctx, []string{idUnknown}, []string{"team"}),
			"InvalidInstanceID.NotFound", switchboard.ENOTFOUND, []string{idUnknown}},
		{"malformed", c.TagInstances(ctx, []string{"web"}, map[string]string{"a": "b"}), "InvalidID", switchboard.EINVALID, []string{"web"}},
		{"empty key", c.TagInstances(ctx, []string{idRunning}, map[string]string{"": "b"}), "InvalidParameterValue", switchboard.EINVALID, nil},
		{"reserved key", c.TagInstances(ctx, []string{idRunning}, map[string]string{"aws:team": "b"}), "InvalidParameterValue", switchboard.EINVALID, nil},
		{"reserved key untag", c.UntagInstances(ctx, []string{idRunning}, []string{"aws:team"}), "InvalidParameterValue", switchboard.EINVALID, nil},
		{"long key", c.TagInstances(ctx, []string{idRunning}, map[string]string{strings.Repeat("k", 129): "b"}), "InvalidParameterValue", switchboard.EINVALID, nil},
		{"long value", c.TagInstances(ctx, []string{idRunning}, map[string]string{"a": strings.Repeat("v", 257)}), "InvalidParameterValue", switchboard.EINVALID, nil},
		// The instance has team and Name: 49 more is 51.
		{"over 50 tags", c.TagInstances(ctx, []string{idRunning}, many), "TagLimitExceeded", switchboard.EINVALID, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCloudError(t, tt.err, tt.code, tt.kind, tt.ids...)
		})
	}
	if got := describeOne(t, c, idRunning).Tags; len(got) != 2 {
		t.Errorf("after the refused calls: tags %v, want the two seeded ones", got)
	}
	delete(many, "k0")
	if err := c.TagInstances(ctx, []string{idRunning}, many); err != nil {
		t.Errorf("48 more tags make 50: %v", err)
	}
}

func TestTagFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := setup(t, sim.Options{Instances: fleet()})
	c.InjectFault(sim.Fault{Action: "CreateTags", Times: 1})
	wantCloudError(t, c.TagInstances(ctx, []string{idRunning}, map[string]string{"pin": "a"}), "InternalError", switchboard.EUNAVAILABLE, idRunning)
	if _, ok := describeOne(t, c, idRunning).Tags["pin"]; ok {
		t.Error("a failed tag call tagged")
	}
	c.InjectFault(sim.Fault{Action: "DeleteTags", Times: 1, Applied: true})
	wantCloudError(t, c.UntagInstances(ctx, []string{idRunning}, []string{"team"}), "InternalError", switchboard.EUNAVAILABLE)
	if _, ok := describeOne(t, c, idRunning).Tags["team"]; ok {
		t.Error("an applied fault did not remove the tag")
	}
}

func TestTagStateFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts, clock := remembering(t, sim.Options{Instances: []switchboard.Instance{{ID: idRunning, Tags: map[string]string{"pin": "alice"}}}})
	first := sim.New(opts)
	if err := first.TagInstances(ctx, []string{idRunning}, map[string]string{"expiry": "friday", "empty": ""}); err != nil {
		t.Fatal(err)
	}
	if err := first.UntagInstances(ctx, []string{idRunning}, []string{"pin"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	second := sim.New(opts)
	sameAccount(t, first, second)
	if got := describeOne(t, second, idRunning).Tags; !maps.Equal(got, map[string]string{"expiry": "friday", "empty": ""}) {
		t.Errorf("reloaded tags %v, want expiry=friday and an empty tag, without pin", got)
	}
}
