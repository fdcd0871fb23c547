package sim_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/sim"
)

// remembering returns opts for an unthrottled cloud that keeps its state in a
// fresh file, on a hand-driven clock: every cloud built from the returned
// options is the same account after a restart.
func remembering(t *testing.T, opts sim.Options) (sim.Options, *sim.Clock) {
	t.Helper()
	clock := sim.NewClock(t0)
	opts.NowFunc = clock.Now
	opts.Limits = sim.Limits{Unlimited: true}
	opts.StateFile = filepath.Join(t.TempDir(), "sim.json")
	return opts, clock
}

// sameAccount checks that two clouds see the same instances, down to the
// details Describe does not show.
func sameAccount(t *testing.T, live, reloaded *sim.Cloud) {
	t.Helper()
	a, b := fmt.Sprintf("%+v", live.Instances()), fmt.Sprintf("%+v", reloaded.Instances())
	if a != b {
		t.Fatalf("after a reload the account differs:\n live:     %s\n reloaded: %s", a, b)
	}
}

func TestStateFileKeepsPendingUntilTheSameTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts, clock := remembering(t, sim.Options{
		Instances:       []switchboard.Instance{{ID: idStopped, Name: "tools", State: switchboard.StateStopped}},
		PendingDuration: 2 * time.Second,
	})
	first := sim.New(opts)
	if _, err := first.StartInstances(ctx, []string{idStopped}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)

	// The restarted process is configured with another fleet: the file wins.
	opts.Instances = []switchboard.Instance{{ID: idRunning, Name: "other"}}
	second := sim.New(opts)
	if _, ok := second.Instance(idRunning); ok {
		t.Errorf("the seed fleet was loaded over the state file")
	}
	for _, step := range []struct {
		advance time.Duration
		want    switchboard.InstanceState
	}{
		{0, switchboard.StatePending},
		{999 * time.Millisecond, switchboard.StatePending},
		{time.Millisecond, switchboard.StateRunning},
	} {
		clock.Advance(step.advance)
		got := describeOne(t, second, idStopped)
		if got.State != step.want || got.Name != "tools" {
			t.Fatalf("at %v after the start: %s %s, want tools %s", clock.Now().Sub(t0), got.Name, got.State, step.want)
		}
		sameAccount(t, first, second)
	}
	if d, _ := second.Instance(idStopped); d.PublicIP == "" {
		t.Errorf("running after the reload without a public address: %+v", d)
	}
}

func TestStateFileSurvivesRestart(t *testing.T) {
	t.Parallel()
	const eip = "52.0.0.10"
	run := sim.RunSpec{ImageID: ami, Count: 2, Tags: map[string]string{"branch": "feat-x"}, ClientToken: "run-7-step-2"}
	tests := []struct {
		name   string
		opts   sim.Options
		before func(ctx context.Context, c *sim.Cloud, clock *sim.Clock) error // the first process
		after  func(t *testing.T, ctx context.Context, c *sim.Cloud, clock *sim.Clock)
	}{{
		name: "stopped",
		opts: sim.Options{Instances: []switchboard.Instance{{ID: idRunning}}},
		before: func(ctx context.Context, c *sim.Cloud, clock *sim.Clock) error {
			_, err := c.StopInstances(ctx, []string{idRunning}, switchboard.StopOptions{})
			clock.Advance(time.Minute)
			return err
		},
		after: func(t *testing.T, ctx context.Context, c *sim.Cloud, clock *sim.Clock) {
			if d, _ := c.Instance(idRunning); d.State != switchboard.StateStopped || d.PublicIP != "" {
				t.Errorf("reloaded: %+v, want stopped without a public address", d)
			}
			changes, err := c.StartInstances(ctx, []string{idRunning})
			if err != nil || changes[0].Previous != switchboard.StateStopped {
				t.Errorf("start after reload: %+v, %v", changes, err)
			}
		},
	}, {
		name: "elastic IP",
		opts: sim.Options{
			Instances:  []switchboard.Instance{{ID: idRunning}, {ID: idStopped, State: switchboard.StateStopped}},
			ElasticIPs: []string{eip},
		},
		before: func(ctx context.Context, c *sim.Cloud, clock *sim.Clock) error {
			return c.AssociateAddress(ctx, idRunning, eip)
		},
		after: func(t *testing.T, ctx context.Context, c *sim.Cloud, clock *sim.Clock) {
			if d, _ := c.Instance(idRunning); d.ElasticIP != eip || d.PublicIP != eip {
				t.Errorf("reloaded: %+v, want Elastic IP %s", d, eip)
			}
			if _, err := c.StopInstances(ctx, []string{idRunning}, switchboard.StopOptions{}); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Minute)
			if got := describeOne(t, c, idRunning).PublicIP; got != eip {
				t.Errorf("stopped after reload: public IP %q, want the Elastic IP %s", got, eip)
			}
			// The address book came back too: only the account's address may be associated.
			wantCloudError(t, c.AssociateAddress(ctx, idStopped, "52.0.0.11"), "InvalidAddress.NotFound", switchboard.ENOTFOUND)
		},
	}, {
		name: "auto-assigned address",
		opts: sim.Options{Instances: []switchboard.Instance{{ID: idRunning}, {ID: idStopped, State: switchboard.StateStopped}}},
		before: func(ctx context.Context, c *sim.Cloud, clock *sim.Clock) error {
			_, err := c.DescribeInstances(ctx, switchboard.Filter{})
			return err
		},
		after: func(t *testing.T, ctx context.Context, c *sim.Cloud, clock *sim.Clock) {
			// Any address may be associated, but not one EC2 lent another instance.
			auto := describeOne(t, c, idRunning).PublicIP
			wantCloudError(t, c.AssociateAddress(ctx, idStopped, auto), "InvalidAddress.NotFound", switchboard.ENOTFOUND)
		},
	}, {
		name: "terminated",
		opts: sim.Options{Instances: []switchboard.Instance{{ID: idRunning}}},
		before: func(ctx context.Context, c *sim.Cloud, clock *sim.Clock) error {
			_, err := c.TerminateInstances(ctx, []string{idRunning})
			return err
		},
		after: func(t *testing.T, ctx context.Context, c *sim.Cloud, clock *sim.Clock) {
			if got := state(t, c, idRunning); got != switchboard.StateShuttingDown {
				t.Errorf("reloaded: %s, want shutting-down", got)
			}
			clock.Advance(sim.DefaultShuttingDownDuration)
			if got := state(t, c, idRunning); got != switchboard.StateTerminated {
				t.Errorf("reloaded, %v on: %s, want terminated", sim.DefaultShuttingDownDuration, got)
			}
			clock.Advance(sim.TerminatedVisibility)
			if _, ok := c.Instance(idRunning); ok {
				t.Errorf("still visible %v after termination", sim.TerminatedVisibility)
			}
		},
	}, {
		name: "reboot",
		opts: sim.Options{Instances: []switchboard.Instance{{ID: idRunning}}},
		before: func(ctx context.Context, c *sim.Cloud, clock *sim.Clock) error {
			return c.RebootInstances(ctx, []string{idRunning})
		},
		after: func(t *testing.T, ctx context.Context, c *sim.Cloud, clock *sim.Clock) {
			if d, _ := c.Instance(idRunning); d.Reboots != 1 || !d.Rebooting {
				t.Errorf("reloaded: %+v, want one reboot under way", d)
			}
			clock.Advance(sim.DefaultRebootDuration)
			if d, _ := c.Instance(idRunning); d.Rebooting {
				t.Errorf("reloaded, still rebooting %v on", sim.DefaultRebootDuration)
			}
		},
	}, {
		name: "client token",
		before: func(ctx context.Context, c *sim.Cloud, clock *sim.Clock) error {
			_, err := c.RunInstances(ctx, run)
			return err
		},
		after: func(t *testing.T, ctx context.Context, c *sim.Cloud, clock *sim.Clock) {
			all, err := c.DescribeInstances(ctx, switchboard.Filter{})
			if err != nil || len(all) != 2 {
				t.Fatalf("reloaded: %+v, %v; want the two launched instances", all, err)
			}
			again, err := c.RunInstances(ctx, run)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(slices.Sorted(slices.Values(ids(again))), ids(all)) || again[0].State != switchboard.StatePending {
				t.Errorf("same token after reload: %+v, want the first launch's %v, pending", again, ids(all))
			}
			other := run
			other.Count = 3
			_, err = c.RunInstances(ctx, other)
			wantCloudError(t, err, "IdempotentParameterMismatch", switchboard.EINVALID)
			other.ClientToken = "run-7-step-3"
			more, err := c.RunInstances(ctx, other)
			if err != nil {
				t.Fatal(err)
			}
			private := make(map[string]bool)
			for _, in := range append(all, more...) {
				if private[in.PrivateIP] {
					t.Errorf("private IP %s handed out twice across the reload", in.PrivateIP)
				}
				private[in.PrivateIP] = true
			}
		},
	}, {
		name: "client token of instances gone",
		before: func(ctx context.Context, c *sim.Cloud, clock *sim.Clock) error {
			launched, err := c.RunInstances(ctx, run)
			if err != nil {
				return err
			}
			if _, err := c.TerminateInstances(ctx, ids(launched)); err != nil {
				return err
			}
			clock.Advance(sim.DefaultShuttingDownDuration + sim.TerminatedVisibility)
			_, err = c.DescribeInstances(ctx, switchboard.Filter{}) // the cloud forgets them here
			return err
		},
		after: func(t *testing.T, ctx context.Context, c *sim.Cloud, clock *sim.Clock) {
			again, err := c.RunInstances(ctx, run)
			if err != nil {
				t.Fatal(err)
			}
			if len(again) != 2 || again[0].State != switchboard.StateTerminated || len(c.Instances()) != 0 {
				t.Errorf("same token after reload: %+v, want the two terminated instances and no launch", again)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			opts, clock := remembering(t, tt.opts)
			first := sim.New(opts)
			if err := tt.before(ctx, first, clock); err != nil {
				t.Fatal(err)
			}
			second := sim.New(opts)
			sameAccount(t, first, second)
			tt.after(t, ctx, second, clock)
		})
	}
}

func TestStateFileWriteFailureChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts, _ := remembering(t, sim.Options{Instances: []switchboard.Instance{{ID: idRunning}, {ID: idStopped, State: switchboard.StateStopped}}})
	dir := filepath.Join(filepath.Dir(opts.StateFile), "state")
	opts.StateFile = filepath.Join(dir, "sim.json")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := sim.New(opts)
	if _, err := c.StartInstances(ctx, []string{idStopped}); err != nil {
		t.Fatal(err)
	}

	// The disk goes away: a cloud that cannot remember a change refuses it.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	_, err := c.StopInstances(ctx, []string{idRunning}, switchboard.StopOptions{})
	ce := wantCloudError(t, err, "InternalError", switchboard.EUNAVAILABLE)
	if !strings.Contains(ce.Message, opts.StateFile) {
		t.Errorf("message %q does not name the state file", ce.Message)
	}
	if got := state(t, c, idRunning); got != switchboard.StateRunning {
		t.Errorf("after the failed stop: %s, want running", got)
	}
	run := sim.RunSpec{ImageID: ami, ClientToken: "run-9"}
	_, err = c.RunInstances(ctx, run)
	wantCloudError(t, err, "InternalError", switchboard.EUNAVAILABLE)
	if n := len(c.Instances()); n != 2 {
		t.Errorf("after the failed launch: %d instances, want 2", n)
	}

	// The disk comes back: the retries act, and a restart remembers them.
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StopInstances(ctx, []string{idRunning}, switchboard.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	if launched, err := c.RunInstances(ctx, run); err != nil || len(launched) != 1 {
		t.Fatalf("retried launch: %+v, %v", launched, err)
	}
	reloaded := sim.New(opts)
	sameAccount(t, c, reloaded)
	if n := len(reloaded.Instances()); n != 3 {
		t.Errorf("reloaded: %d instances, want 3", n)
	}
}

func TestStateFileConcurrentCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts, clock := remembering(t, sim.Options{Instances: benchFleet(8)})
	c := sim.New(opts)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			id := fmt.Sprintf("i-%017x", g+1)
			for i := range 12 {
				var err error
				switch i % 4 {
				case 0:
					_, err = c.StopInstances(ctx, []string{id}, switchboard.StopOptions{})
				case 1:
					_, err = c.StartInstances(ctx, []string{id})
				case 2:
					_, err = c.RunInstances(ctx, sim.RunSpec{ImageID: ami, ClientToken: fmt.Sprintf("g%d-%d", g, i)})
				case 3:
					_, err = c.DescribeInstances(ctx, switchboard.Filter{})
				}
				if err != nil && !strings.Contains(err.Error(), "IncorrectInstanceState") {
					t.Errorf("%s: %v", id, err)
				}
				clock.Advance(time.Second)
			}
		})
	}
	wg.Wait()
	sameAccount(t, c, sim.New(opts))
}

func TestStateFileUnreadable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string // written to the file; "" makes the file a directory
		want    string
	}{
		{"not JSON", "{\"version\": 1, \"instances\": [", "is not a simulated cloud's state"},
		{"other version", `{"version": 99}`, "has state version 99"},
		{"bad instance id", `{"version": 1, "instances": [{"id": "web-1", "state": "running"}]}`, `id "web-1" is not an EC2 instance id`},
		{"unknown state", `{"version": 1, "instances": [{"id": "i-0000000000000000b", "state": "asleep"}]}`, `unknown state "asleep"`},
		{"a directory", "", "cannot read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts, _ := remembering(t, sim.Options{})
			var err error
			if tt.content == "" {
				err = os.Mkdir(opts.StateFile, 0o700)
			} else {
				err = os.WriteFile(opts.StateFile, []byte(tt.content), 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			wantStateFileError(t, opts, tt.want)
		})
	}
	t.Run("no directory", func(t *testing.T) {
		t.Parallel()
		opts, _ := remembering(t, sim.Options{})
		opts.StateFile = filepath.Join(filepath.Dir(opts.StateFile), "missing", "sim.json")
		wantStateFileError(t, opts, "does not exist")
	})
}

// wantStateFileError checks that Validate reports the state file by name and
// that New panics with the same error.
func wantStateFileError(t *testing.T, opts sim.Options, want string) {
	t.Helper()
	err := opts.Validate()
	if err == nil || !strings.Contains(err.Error(), opts.StateFile) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Validate() = %v, want an error naming %s and saying %q", err, opts.StateFile, want)
	}
	defer func() {
		if p := recover(); fmt.Sprint(p) != err.Error() {
			t.Errorf("New panicked with %v, want %v", p, err)
		}
	}()
	sim.New(opts)
}
