package sim_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/sim"
)

const ami = "ami-0abcdef1234567890"

func ids(instances []switchboard.Instance) []string {
	out := make([]string, len(instances))
	for i, in := range instances {
		out[i] = in.ID
	}
	return out
}

func TestRunInstances(t *testing.T) {
	t.Parallel()
	c, clock := setup(t, sim.Options{})
	spec := sim.RunSpec{ImageID: ami, Type: "t3.small", Count: 2, Tags: map[string]string{"Name": "deploy-feat-x", "branch": "feat-x"}, UserData: "#cloud-config\n"}
	got, err := c.RunInstances(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID == got[1].ID {
		t.Fatalf("launched %+v, want two distinct instances", got)
	}
	for _, in := range got {
		if in.State != switchboard.StatePending || in.Type != "t3.small" || in.Name != "deploy-feat-x" || in.PublicIP != "" || in.PrivateIP == "" || !in.LaunchTime.Equal(t0) {
			t.Errorf("launched %+v", in)
		}
		if !strings.HasPrefix(in.ID, "i-0") || len(in.ID) != 19 {
			t.Errorf("id %q is not in EC2's long form", in.ID)
		}
	}
	clock.Advance(sim.DefaultPendingDuration)
	d, ok := c.Instance(got[0].ID)
	if !ok || d.State != switchboard.StateRunning || d.PublicIP == "" || d.ImageID != ami || d.UserData != spec.UserData {
		t.Errorf("after %v: %+v", sim.DefaultPendingDuration, d)
	}
	found, err := c.DescribeInstances(context.Background(), switchboard.Filter{Tags: map[string]string{"branch": "feat-x"}})
	if err != nil || len(found) != 2 {
		t.Errorf("describe by tag: %d instances, err %v; want 2", len(found), err)
	}
}

func TestRunInstancesClientToken(t *testing.T) {
	t.Parallel()
	c, clock := setup(t, sim.Options{})
	ctx := context.Background()
	spec := sim.RunSpec{ImageID: ami, Count: 1, Tags: map[string]string{"branch": "feat-x"}, ClientToken: "run-42-step-3"}

	first, err := c.RunInstances(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	again, err := c.RunInstances(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(first), ids(again)) {
		t.Errorf("same token launched %v then %v, want the same instances", ids(first), ids(again))
	}
	if again[0].State != switchboard.StateRunning {
		t.Errorf("the repeated call reports %s, want the instance as it is now: running", again[0].State)
	}
	if n := len(c.Instances()); n != 1 {
		t.Errorf("%d instances in the account, want 1", n)
	}

	// The same token with other parameters is refused.
	other := spec
	other.Count = 3
	_, err = c.RunInstances(ctx, other)
	wantCloudError(t, err, "IdempotentParameterMismatch", switchboard.EINVALID)

	// A different token launches anew; no token always does.
	for _, s := range []sim.RunSpec{{ImageID: ami, ClientToken: "run-43-step-3"}, {ImageID: ami}, {ImageID: ami}} {
		if _, err := c.RunInstances(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.Instances()); n != 4 {
		t.Errorf("%d instances in the account, want 4", n)
	}

	// Once the instance is terminated and gone, the token still answers
	// with it, as last seen.
	if err := terminate(c, first[0].ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	if _, ok := c.Instance(first[0].ID); ok {
		t.Fatal("terminated instance still in the account after two hours")
	}
	late, err := c.RunInstances(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(late) != 1 || late[0].ID != first[0].ID || late[0].State != switchboard.StateTerminated {
		t.Errorf("token after the instance left = %+v, want %s terminated", late, first[0].ID)
	}
}

func TestRunInstancesLostResponse(t *testing.T) {
	t.Parallel()
	// The reason for client tokens: the launch happened but the answer was
	// lost, and the retry must not launch a second instance.
	c, _ := setup(t, sim.Options{})
	c.InjectFault(sim.Fault{Action: "RunInstances", Times: 1, Applied: true})
	spec := sim.RunSpec{ImageID: ami, ClientToken: "run-7-step-1"}
	_, err := c.RunInstances(context.Background(), spec)
	wantCloudError(t, err, "InternalError", switchboard.EUNAVAILABLE)
	got, err := c.RunInstances(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	all := c.Instances()
	if len(all) != 1 || len(got) != 1 || got[0].ID != all[0].ID {
		t.Errorf("after a lost response and a retry: answered %v, account holds %d instances; want the one launched", ids(got), len(all))
	}
}

func TestRunInstancesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec sim.RunSpec
		code string
	}{
		{"no image", sim.RunSpec{}, "MissingParameter"},
		{"malformed image", sim.RunSpec{ImageID: "ubuntu-24.04"}, "InvalidAMIID.Malformed"},
		{"negative count", sim.RunSpec{ImageID: ami, Count: -1}, "InvalidParameterValue"},
		{"too many", sim.RunSpec{ImageID: ami, Count: 1001}, "InvalidParameterValue"},
		{"user data over 16 KiB", sim.RunSpec{ImageID: ami, UserData: strings.Repeat("x", 16*1024+1)}, "InvalidParameterValue"},
		{"token over 64 characters", sim.RunSpec{ImageID: ami, ClientToken: strings.Repeat("t", 65)}, "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := setup(t, sim.Options{})
			_, err := c.RunInstances(context.Background(), tt.spec)
			wantCloudError(t, err, tt.code, switchboard.EINVALID)
			if n := len(c.Instances()); n != 0 {
				t.Errorf("a refused launch left %d instances", n)
			}
		})
	}
}
