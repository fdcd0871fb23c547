package sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/sim"
)

func TestThrottling(t *testing.T) {
	t.Parallel()
	clock := sim.NewClock(t0)
	c := sim.New(sim.Options{NowFunc: clock.Now, Instances: []switchboard.Instance{{ID: idRunning}}})
	ctx := context.Background()
	startOnce := func() error {
		_, err := c.StartInstances(ctx, []string{idRunning})
		return err
	}

	// StartInstances: a burst of 5, then nothing until the bucket refills.
	for i := range 5 {
		if err := startOnce(); err != nil {
			t.Fatalf("call %d of the burst: %v", i+1, err)
		}
	}
	ce := wantCloudError(t, startOnce(), "RequestLimitExceeded", switchboard.ETHROTTLED)
	if ce.Message != "Request limit exceeded." {
		t.Errorf("message = %q", ce.Message)
	}

	// Other actions have buckets of their own.
	if _, err := c.DescribeInstances(ctx, switchboard.Filter{}); err != nil {
		t.Errorf("describe while StartInstances is throttled: %v", err)
	}

	// Two tokens a second: one every 500ms.
	clock.Advance(499 * time.Millisecond)
	wantCloudError(t, startOnce(), "RequestLimitExceeded", switchboard.ETHROTTLED)
	clock.Advance(time.Millisecond)
	if err := startOnce(); err != nil {
		t.Errorf("after 500ms: %v", err)
	}
	wantCloudError(t, startOnce(), "RequestLimitExceeded", switchboard.ETHROTTLED)

	// A full refill takes 2.5s, and the bucket holds no more than 5.
	clock.Advance(time.Hour)
	for i := range 5 {
		if err := startOnce(); err != nil {
			t.Fatalf("call %d after a refill: %v", i+1, err)
		}
	}
	wantCloudError(t, startOnce(), "RequestLimitExceeded", switchboard.ETHROTTLED)

	s := c.Stats()
	if s.Calls["StartInstances"] != 15 || s.Throttled != 4 || s.Failed != 4 || s.Calls["DescribeInstances"] != 1 {
		t.Errorf("stats = %+v, want 15 StartInstances calls, 4 throttled and failed, 1 DescribeInstances", s)
	}
}

func TestThrottlingBuckets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limits sim.Limits
		call   func(*sim.Cloud) error
		burst  int // calls that pass at one instant; -1 for unlimited
	}{
		{"describe default", sim.Limits{}, describeAll, 100},
		{"stop default", sim.Limits{}, stopStopped, 50},
		{"reboot default", sim.Limits{}, rebootRunning, 50},
		{"associate default", sim.Limits{}, associate, 50},
		{"create tags default", sim.Limits{}, tagRunning, 50},
		{"delete tags default", sim.Limits{}, untagRunning, 50},
		{"tags share the mutating class's size", sim.Limits{Mutate: sim.Bucket{Burst: 2}}, tagRunning, 2},
		{"terminate default", sim.Limits{}, terminateTerminated, 100},
		{"run default", sim.Limits{}, runOne, 5},
		{"custom burst keeps the default rate", sim.Limits{Describe: sim.Bucket{Burst: 3}}, describeAll, 3},
		{"class turned off", sim.Limits{Describe: sim.Bucket{PerSecond: -1}}, describeAll, -1},
		{"unlimited", sim.Limits{Unlimited: true}, runOne, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := sim.NewClock(t0)
			c := sim.New(sim.Options{NowFunc: clock.Now, Limits: tt.limits, Instances: fleet()})
			n := tt.burst
			if n < 0 {
				n = 500
			}
			for i := range n {
				if err := tt.call(c); err != nil {
					t.Fatalf("call %d: %v", i+1, err)
				}
			}
			if tt.burst >= 0 {
				wantCloudError(t, tt.call(c), "RequestLimitExceeded", switchboard.ETHROTTLED)
			}
		})
	}
}

func describeAll(c *sim.Cloud) error {
	_, err := c.DescribeInstances(context.Background(), switchboard.Filter{})
	return err
}

func stopStopped(c *sim.Cloud) error {
	_, err := c.StopInstances(context.Background(), []string{idStopped}, switchboard.StopOptions{})
	return err
}

func rebootRunning(c *sim.Cloud) error {
	return c.RebootInstances(context.Background(), []string{idRunning})
}

func associate(c *sim.Cloud) error {
	return c.AssociateAddress(context.Background(), idRunning, "203.0.113.10")
}

func terminateTerminated(c *sim.Cloud) error {
	_, err := c.TerminateInstances(context.Background(), []string{idTerminated})
	return err
}

func runOne(c *sim.Cloud) error {
	_, err := c.RunInstances(context.Background(), sim.RunSpec{ImageID: ami})
	return err
}

func tagRunning(c *sim.Cloud) error {
	return c.TagInstances(context.Background(), []string{idRunning}, map[string]string{"expiry": "friday"})
}

func untagRunning(c *sim.Cloud) error {
	return c.UntagInstances(context.Background(), []string{idRunning}, []string{"expiry"})
}
