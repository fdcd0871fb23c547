package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/fleet"
	"github.com/switchboardhq/switchboard/sim"
	"github.com/switchboardhq/switchboard/steps"
)

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// id is the nth test instance's id, in EC2's long form.
func id(n int) string { return fmt.Sprintf("i-%017x", n+1) }

func ids(from, to int) []string {
	var out []string
	for n := from; n < to; n++ {
		out = append(out, id(n))
	}
	return out
}

// instances is a fleet of n instances tagged env=dev; state says each one's
// state, running when nil.
func instances(n int, state func(int) switchboard.InstanceState) []switchboard.Instance {
	out := make([]switchboard.Instance, n)
	for i := range out {
		out[i] = switchboard.Instance{ID: id(i), Name: fmt.Sprintf("dev-%d", i), Tags: map[string]string{"env": "dev"}}
		if state != nil {
			out[i].State = state(i)
		}
	}
	return out
}

// testBundle is a simulated cloud and the fleet wrapper around it, both on
// one fake clock that the wrapper's waits move forward, so token waits and
// backoffs take no real time.
type testBundle struct {
	clock *sim.Clock
	cloud *sim.Cloud
	fleet *fleet.Provider
}

// setup builds a bundle. wrap, when not nil, puts a test double between the
// wrapper and the simulated cloud.
func setup(t testing.TB, so sim.Options, fo fleet.Options, wrap func(*sim.Cloud) switchboard.Provider) *testBundle {
	t.Helper()
	clock := sim.NewClock(t0)
	so.NowFunc = clock.Now
	cloud := sim.New(so)
	var p switchboard.Provider = cloud
	if wrap != nil {
		p = wrap(cloud)
	}
	fo.NowFunc = clock.Now
	fo.SleepFunc = func(ctx context.Context, d time.Duration) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		clock.Advance(d)
		return nil
	}
	if fo.RandFunc == nil {
		fo.RandFunc = rand.New(rand.NewPCG(1, 2)).Float64
	}
	return &testBundle{clock: clock, cloud: cloud, fleet: fleet.Wrap(p, fo)}
}

// spy records how many ids each call named.
type spy struct {
	*sim.Cloud
	mu    sync.Mutex
	sizes map[string][]int
}

func (s *spy) saw(action string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sizes[action] = append(s.sizes[action], n)
}

func (s *spy) DescribeInstances(ctx context.Context, f switchboard.Filter) ([]switchboard.Instance, error) {
	s.saw("DescribeInstances", len(f.IDs))
	return s.Cloud.DescribeInstances(ctx, f)
}

func (s *spy) StartInstances(ctx context.Context, ids []string) ([]switchboard.StateChange, error) {
	s.saw("StartInstances", len(ids))
	return s.Cloud.StartInstances(ctx, ids)
}

func (s *spy) StopInstances(ctx context.Context, ids []string, o switchboard.StopOptions) ([]switchboard.StateChange, error) {
	s.saw("StopInstances", len(ids))
	return s.Cloud.StopInstances(ctx, ids, o)
}

func (s *spy) RebootInstances(ctx context.Context, ids []string) error {
	s.saw("RebootInstances", len(ids))
	return s.Cloud.RebootInstances(ctx, ids)
}

func (s *spy) TerminateInstances(ctx context.Context, ids []string) ([]switchboard.StateChange, error) {
	s.saw("TerminateInstances", len(ids))
	return s.Cloud.TerminateInstances(ctx, ids)
}

func (s *spy) TagInstances(ctx context.Context, ids []string, tags map[string]string) error {
	s.saw("CreateTags", len(ids))
	return s.Cloud.TagInstances(ctx, ids, tags)
}

func (s *spy) UntagInstances(ctx context.Context, ids []string, keys []string) error {
	s.saw("DeleteTags", len(ids))
	return s.Cloud.UntagInstances(ctx, ids, keys)
}

func TestBatchSizes(t *testing.T) {
	t.Parallel()
	stopped := func(int) switchboard.InstanceState { return switchboard.StateStopped }
	tests := []struct {
		name   string
		fleet  int
		state  func(int) switchboard.InstanceState
		batch  fleet.BatchSizes
		action string
		call   func(context.Context, *fleet.Provider) error
		want   []int
	}{
		{"stop", 450, nil, fleet.BatchSizes{}, "StopInstances", func(ctx context.Context, p *fleet.Provider) error {
			_, err := p.StopInstances(ctx, ids(0, 450), switchboard.StopOptions{})
			return err
		}, []int{100, 100, 100, 100, 50}},
		{"start", 450, stopped, fleet.BatchSizes{}, "StartInstances", func(ctx context.Context, p *fleet.Provider) error {
			_, err := p.StartInstances(ctx, ids(0, 450))
			return err
		}, []int{100, 100, 100, 100, 50}},
		{"reboot", 250, nil, fleet.BatchSizes{}, "RebootInstances", func(ctx context.Context, p *fleet.Provider) error {
			return p.RebootInstances(ctx, ids(0, 250))
		}, []int{100, 100, 50}},
		{"terminate", 2500, nil, fleet.BatchSizes{}, "TerminateInstances", func(ctx context.Context, p *fleet.Provider) error {
			_, err := p.TerminateInstances(ctx, ids(0, 2500))
			return err
		}, []int{1000, 1000, 500}},
		{"describe by id", 450, nil, fleet.BatchSizes{}, "DescribeInstances", func(ctx context.Context, p *fleet.Provider) error {
			got, err := p.DescribeInstances(ctx, switchboard.Filter{IDs: ids(0, 450)})
			if len(got) != 450 {
				return fmt.Errorf("described %d instances, want 450", len(got))
			}
			return err
		}, []int{200, 200, 50}},
		{"describe by tag is one call", 450, nil, fleet.BatchSizes{}, "DescribeInstances", func(ctx context.Context, p *fleet.Provider) error {
			got, err := p.DescribeInstances(ctx, switchboard.Filter{Tags: map[string]string{"env": "dev"}})
			if len(got) != 450 {
				return fmt.Errorf("described %d instances, want 450", len(got))
			}
			return err
		}, []int{0}},
		{"tag", 120, nil, fleet.BatchSizes{}, "CreateTags", func(ctx context.Context, p *fleet.Provider) error {
			return p.TagInstances(ctx, ids(0, 120), map[string]string{"expiry": "friday"})
		}, []int{50, 50, 20}},
		{"untag, custom size", 120, nil, fleet.BatchSizes{Tag: 100}, "DeleteTags", func(ctx context.Context, p *fleet.Provider) error {
			return p.UntagInstances(ctx, ids(0, 120), []string{"env"})
		}, []int{100, 20}},
		{"custom size", 100, nil, fleet.BatchSizes{Mutate: 30}, "StopInstances", func(ctx context.Context, p *fleet.Provider) error {
			_, err := p.StopInstances(ctx, ids(0, 100), switchboard.StopOptions{})
			return err
		}, []int{30, 30, 30, 10}},
		{"repeated ids count once", 150, nil, fleet.BatchSizes{}, "StopInstances", func(ctx context.Context, p *fleet.Provider) error {
			changes, err := p.StopInstances(ctx, append(ids(0, 150), ids(0, 50)...), switchboard.StopOptions{})
			if len(changes) != 150 {
				return fmt.Errorf("%d changes, want 150", len(changes))
			}
			return err
		}, []int{100, 50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s *spy
			b := setup(t, sim.Options{Instances: instances(tt.fleet, tt.state), Limits: sim.Limits{Unlimited: true}},
				fleet.Options{Batch: tt.batch}, func(c *sim.Cloud) switchboard.Provider {
					s = &spy{Cloud: c, sizes: map[string][]int{}}
					return s
				})
			if err := tt.call(t.Context(), b.fleet); err != nil {
				t.Fatal(err)
			}
			if got := s.sizes[tt.action]; !slices.Equal(got, tt.want) {
				t.Errorf("%s batch sizes = %v, want %v", tt.action, got, tt.want)
			}
			if got := b.cloud.Stats().Calls[tt.action]; got != len(tt.want) {
				t.Errorf("the cloud answered %d %s calls, want %d", got, tt.action, len(tt.want))
			}
			if got := b.fleet.Stats().Calls[tt.action]; got != len(tt.want) {
				t.Errorf("the wrapper counted %d %s calls, want %d", got, tt.action, len(tt.want))
			}
		})
	}
}

func TestOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, sim.Options{Instances: instances(30, nil), Limits: sim.Limits{Unlimited: true}}, fleet.Options{Batch: fleet.BatchSizes{Mutate: 7}}, nil)
	asked := ids(0, 30)
	slices.Reverse(asked)
	changes, err := b.fleet.StopInstances(t.Context(), asked, switchboard.StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(changes))
	for i, c := range changes {
		got[i] = c.ID
	}
	if !slices.Equal(got, asked) {
		t.Errorf("changes in order %v, want the order asked %v", got, asked)
	}
}

func TestThrottling(t *testing.T) {
	t.Parallel()
	stopped := func(int) switchboard.InstanceState { return switchboard.StateStopped }
	unlimited := fleet.Limits{
		Describe: fleet.Bucket{PerSecond: -1}, Mutate: fleet.Bucket{PerSecond: -1},
		Start: fleet.Bucket{PerSecond: -1}, Terminate: fleet.Bucket{PerSecond: -1},
	}
	tests := []struct {
		name          string
		limits        fleet.Limits
		neighbour     bool // someone else spends the account's StartInstances bucket first
		wantThrottled bool
	}{
		// EC2's own buckets, kept on our side: the cloud never has to say no.
		{"ec2 buckets", fleet.EC2Limits(), false, false},
		// No buckets on our side: the cloud says no and the retries ride it out.
		{"no buckets", unlimited, false, true},
		// Buckets are per account, so another client can spend ours.
		{"bucket spent by a neighbour", fleet.Limits{}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, sim.Options{Instances: instances(300, stopped)}, fleet.Options{
				Limits:      tt.limits,
				Batch:       fleet.BatchSizes{Mutate: 10},
				MaxAttempts: 10,
			}, nil)
			ctx := t.Context()
			if tt.neighbour {
				for range 5 {
					if _, err := b.cloud.StartInstances(ctx, []string{id(0)}); err != nil {
						t.Fatal(err)
					}
				}
			}
			before := b.cloud.Stats()
			changes, err := b.fleet.StartInstances(ctx, ids(0, 300))
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range changes {
				if c.ID != id(i) || c.Current != switchboard.StatePending {
					t.Fatalf("change %d = %+v, want %s pending", i, c, id(i))
				}
			}
			if len(changes) != 300 {
				t.Fatalf("%d changes, want 300", len(changes))
			}
			cs, fs := b.cloud.Stats(), b.fleet.Stats()
			throttled := cs.Throttled - before.Throttled
			if (throttled > 0) != tt.wantThrottled {
				t.Errorf("the cloud throttled %d calls; want throttling: %v", throttled, tt.wantThrottled)
			}
			if fs.Throttled != throttled || fs.Retries != throttled {
				t.Errorf("wrapper stats %+v; want %d throttled and as many retries", fs, throttled)
			}
			if got := cs.Calls["StartInstances"] - before.Calls["StartInstances"]; got != 30+throttled {
				t.Errorf("%d StartInstances calls, want 30 batches + %d retries", got, throttled)
			}
			t.Logf("%d calls, %d throttled, waited %s for tokens and %s backing off", fs.TotalCalls(), fs.Throttled, fs.TokenWait, fs.Backoff)
		})
	}
}

// stopIDs returns the ids in changes that are now stopping.
func stopping(changes []switchboard.StateChange) []string {
	var out []string
	for _, c := range changes {
		if c.Current == switchboard.StateStopping {
			out = append(out, c.ID)
		}
	}
	return out
}

func TestIsolate(t *testing.T) {
	t.Parallel()
	unknown := "i-0000000000000dead"
	conflict := &switchboard.CloudError{Code: "IncorrectInstanceState", Kind: switchboard.ECONFLICT,
		Message: "The instance is not in a state from which it can be stopped."}
	tests := []struct {
		name   string
		state  func(int) switchboard.InstanceState
		fault  *sim.Fault
		stop   []string
		failed map[string]string // id → the cloud's code
		calls  int
		splits int
	}{
		{
			name:   "an error naming no instance is bisected",
			fault:  &sim.Fault{Action: "StopInstances", IDs: []string{id(5)}, Err: conflict},
			stop:   ids(0, 16),
			failed: map[string]string{id(5): "IncorrectInstanceState"},
			calls:  9, // 16 → 8+8 → 4+4 → 2+2 → 1+1, the good halves done on the way
			splits: 4,
		},
		{
			name: "an instance the cloud names is set aside",
			state: func(i int) switchboard.InstanceState {
				return map[bool]switchboard.InstanceState{true: switchboard.StatePending, false: switchboard.StateRunning}[i == 7]
			},
			stop:   ids(0, 16),
			failed: map[string]string{id(7): "IncorrectInstanceState"},
			calls:  2,
			splits: 1,
		},
		{
			name:   "unknown ids",
			stop:   []string{id(0), unknown, id(1), "i-0000000000000beef"},
			failed: map[string]string{unknown: "InvalidInstanceID.NotFound", "i-0000000000000beef": "InvalidInstanceID.NotFound"},
			calls:  2,
			splits: 1,
		},
		{
			name:   "two bad halves",
			fault:  &sim.Fault{Action: "StopInstances", IDs: []string{id(0), id(3)}, Err: conflict},
			stop:   ids(0, 4),
			failed: map[string]string{id(0): "IncorrectInstanceState", id(3): "IncorrectInstanceState"},
			calls:  7, // 4 → 2+2 → 1+1 and 1+1
			splits: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, sim.Options{Instances: instances(16, tt.state)}, fleet.Options{}, nil)
			if tt.fault != nil {
				b.cloud.InjectFault(*tt.fault)
			}
			changes, err := b.fleet.StopInstances(t.Context(), tt.stop, switchboard.StopOptions{})
			failed := steps.Failures(err)
			if failed == nil {
				t.Fatalf("err = %v, want a PartialError", err)
			}
			for id, code := range tt.failed {
				if got := steps.Reason(failed[id]); got != code {
					t.Errorf("%s failed with %q, want %q", id, got, code)
				}
			}
			if len(failed) != len(tt.failed) {
				t.Errorf("failed = %v, want %v", failed, tt.failed)
			}
			var want []string
			for _, id := range tt.stop {
				if _, bad := tt.failed[id]; !bad {
					want = append(want, id)
				}
			}
			if got := stopping(changes); !slices.Equal(got, want) {
				t.Errorf("stopping %v, want %v", got, want)
			}
			for _, id := range want {
				if d, _ := b.cloud.Instance(id); d.State != switchboard.StateStopping {
					t.Errorf("%s is %s in the cloud, want stopping", id, d.State)
				}
			}
			if s := b.fleet.Stats(); s.Calls["StopInstances"] != tt.calls || s.Splits != tt.splits {
				t.Errorf("%d calls and %d splits, want %d and %d", s.Calls["StopInstances"], s.Splits, tt.calls, tt.splits)
			}
		})
	}
}

func TestIsolateDescribe(t *testing.T) {
	t.Parallel()
	unknown := "i-0000000000000dead"
	b := setup(t, sim.Options{Instances: instances(5, nil)}, fleet.Options{}, nil)
	ctx := t.Context()

	found, err := b.fleet.DescribeInstances(ctx, switchboard.Filter{IDs: []string{id(0), unknown, id(4)}})
	if failed := steps.Failures(err); len(failed) != 1 || switchboard.ErrorCode(failed[unknown]) != switchboard.ENOTFOUND {
		t.Errorf("err = %v, want a PartialError with %s not found", err, unknown)
	}
	if switchboard.ErrorCode(err) != switchboard.ECONFLICT {
		t.Errorf("ErrorCode = %q for a partly failed call, want %q", switchboard.ErrorCode(err), switchboard.ECONFLICT)
	}
	if len(found) != 2 || found[0].ID != id(0) || found[1].ID != id(4) {
		t.Errorf("found %v, want %s and %s", found, id(0), id(4))
	}

	// A lone unknown id still reads as not found, as it does without batching.
	_, err = b.fleet.DescribeInstances(ctx, switchboard.Filter{IDs: []string{unknown}})
	var pe *switchboard.PartialError
	if !errors.As(err, &pe) || switchboard.ErrorCode(err) != switchboard.ENOTFOUND {
		t.Errorf("err = %v (code %q), want a PartialError that reads not_found", err, switchboard.ErrorCode(err))
	}
	if msg := switchboard.ErrorMessage(err); msg != "The cloud answered InvalidInstanceID.NotFound: The instance ID '"+unknown+"' does not exist" {
		t.Errorf("message = %q", msg)
	}
}

func TestIsolateReboot(t *testing.T) {
	t.Parallel()
	b := setup(t, sim.Options{Instances: instances(6, func(i int) switchboard.InstanceState {
		if i == 2 {
			return switchboard.StateStopped
		}
		return switchboard.StateRunning
	})}, fleet.Options{}, nil)
	err := b.fleet.RebootInstances(t.Context(), ids(0, 6))
	if failed := steps.Failures(err); len(failed) != 1 || steps.Reason(failed[id(2)]) != "IncorrectInstanceState" {
		t.Fatalf("err = %v, want %s failed with IncorrectInstanceState", err, id(2))
	}
	for i := range 6 {
		d, _ := b.cloud.Instance(id(i))
		if want := map[bool]int{true: 0, false: 1}[i == 2]; d.Reboots != want {
			t.Errorf("%s rebooted %d times, want %d", id(i), d.Reboots, want)
		}
	}
}

// batchAnswer is a cloud that answers a stop per instance, as Alibaba's
// batch APIs do: it stops what it can and reports the rest.
type batchAnswer struct {
	*sim.Cloud
	refuse string
}

func (c *batchAnswer) StopInstances(ctx context.Context, ids []string, o switchboard.StopOptions) ([]switchboard.StateChange, error) {
	ok := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == c.refuse })
	changes, err := c.Cloud.StopInstances(ctx, ok, o)
	if err != nil {
		return nil, err
	}
	return changes, &switchboard.PartialError{Failed: map[string]error{c.refuse: &switchboard.CloudError{
		Code: "IncorrectInstanceStatus", Kind: switchboard.ECONFLICT, IDs: []string{c.refuse}}}}
}

func TestPartialAnswerIsMerged(t *testing.T) {
	t.Parallel()
	b := setup(t, sim.Options{Instances: instances(10, nil)}, fleet.Options{}, func(c *sim.Cloud) switchboard.Provider {
		return &batchAnswer{Cloud: c, refuse: id(3)}
	})
	changes, err := b.fleet.StopInstances(t.Context(), ids(0, 10), switchboard.StopOptions{})
	if failed := steps.Failures(err); len(failed) != 1 || steps.Reason(failed[id(3)]) != "IncorrectInstanceStatus" {
		t.Fatalf("err = %v, want %s failed", err, id(3))
	}
	if len(stopping(changes)) != 9 {
		t.Errorf("changes = %v, want 9 stopping", changes)
	}
	if s := b.fleet.Stats(); s.Calls["StopInstances"] != 1 || s.Splits != 0 {
		t.Errorf("%d calls and %d splits, want one call and no split", s.Calls["StopInstances"], s.Splits)
	}
}

// throttledOnce answers the first stop RequestLimitExceeded with a RetryAfter.
type throttledOnce struct {
	*sim.Cloud
	once sync.Once
}

func (c *throttledOnce) StopInstances(ctx context.Context, ids []string, o switchboard.StopOptions) (changes []switchboard.StateChange, err error) {
	c.once.Do(func() {
		err = &switchboard.CloudError{Code: "Throttling", Kind: switchboard.ETHROTTLED, RetryAfter: 7 * time.Second}
	})
	if err != nil {
		return nil, err
	}
	return c.Cloud.StopInstances(ctx, ids, o)
}

func TestRetry(t *testing.T) {
	t.Parallel()
	forbidden := &switchboard.CloudError{Code: "UnauthorizedOperation", Kind: switchboard.EFORBIDDEN, Message: "You are not authorized to perform this operation."}
	stop := func(ctx context.Context, p *fleet.Provider) error {
		_, err := p.StopInstances(ctx, ids(0, 3), switchboard.StopOptions{})
		return err
	}
	run := func(token string) func(ctx context.Context, p *fleet.Provider) error {
		return func(ctx context.Context, p *fleet.Provider) error {
			_, err := p.RunInstances(ctx, switchboard.LaunchSpec{ImageID: "ami-0123456789abcdef0", ClientToken: token})
			return err
		}
	}
	tests := []struct {
		name     string
		fault    sim.Fault
		call     func(context.Context, *fleet.Provider) error
		action   string
		wantCode string // "" for success
		calls    int
	}{
		{"unavailable, then works", sim.Fault{Action: "StopInstances", Times: 2}, stop, "StopInstances", "", 3},
		{"unavailable for longer than the attempts", sim.Fault{Action: "StopInstances"}, stop, "StopInstances", switchboard.EUNAVAILABLE, 4},
		{"forbidden is not retried", sim.Fault{Action: "StopInstances", Err: forbidden}, stop, "StopInstances", switchboard.EFORBIDDEN, 1},
		{"an unexpected error is not retried", sim.Fault{Action: "StopInstances", Err: errors.New("connection reset")}, stop, "StopInstances", switchboard.EINTERNAL, 1},
		{"a launch without a client token is not repeated", sim.Fault{Action: "RunInstances", Times: 1}, run(""), "RunInstances", switchboard.EUNAVAILABLE, 1},
		{"a launch with a client token is", sim.Fault{Action: "RunInstances", Times: 1, Applied: true}, run("run-1/step-2"), "RunInstances", "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, sim.Options{Instances: instances(3, nil)}, fleet.Options{MaxAttempts: 4}, nil)
			b.cloud.InjectFault(tt.fault)
			err := tt.call(t.Context(), b.fleet)
			if got := switchboard.ErrorCode(err); got != tt.wantCode {
				t.Errorf("err = %v (code %q), want code %q", err, got, tt.wantCode)
			}
			s := b.fleet.Stats()
			if got := b.cloud.Stats().Calls[tt.action]; got != tt.calls || s.Calls[tt.action] != tt.calls {
				t.Errorf("the cloud answered %d calls and the wrapper counted %d, want %d", got, s.Calls[tt.action], tt.calls)
			}
			if s.Retries != tt.calls-1 {
				t.Errorf("%d retries, want %d", s.Retries, tt.calls-1)
			}
		})
	}
	t.Run("a launch with a client token launches once", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sim.Options{}, fleet.Options{}, nil)
		b.cloud.InjectFault(sim.Fault{Action: "RunInstances", Times: 1, Applied: true})
		if err := run("run-1/step-2")(t.Context(), b.fleet); err != nil {
			t.Fatal(err)
		}
		if n := len(b.cloud.Instances()); n != 1 {
			t.Errorf("%d instances launched, want 1", n)
		}
	})
	t.Run("the cloud's RetryAfter is respected", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sim.Options{Instances: instances(3, nil)}, fleet.Options{}, func(c *sim.Cloud) switchboard.Provider {
			return &throttledOnce{Cloud: c}
		})
		if err := stop(t.Context(), b.fleet); err != nil {
			t.Fatal(err)
		}
		if s := b.fleet.Stats(); s.Backoff < 7*time.Second || s.Throttled != 1 || s.Retries != 1 {
			t.Errorf("stats %+v, want one throttled call retried after at least 7s", s)
		}
		if waited := b.clock.Now().Sub(t0); waited < 7*time.Second {
			t.Errorf("retried after %s, want at least the 7s the cloud asked for", waited)
		}
	})
}

func TestCancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  fleet.Options
		fault *sim.Fault
	}{
		// One token, then one every 1000s.
		{"waiting for a token", fleet.Options{Limits: fleet.Limits{Start: fleet.Bucket{Burst: 1, PerSecond: 0.001}}}, nil},
		{"backing off", fleet.Options{BaseDelay: time.Hour, MaxDelay: time.Hour, RandFunc: func() float64 { return 0.99 }},
			&sim.Fault{Action: "StartInstances", IDs: []string{id(1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cloud := sim.New(sim.Options{Instances: instances(2, func(int) switchboard.InstanceState { return switchboard.StateStopped })})
			if tt.fault != nil {
				cloud.InjectFault(*tt.fault)
			}
			p := fleet.Wrap(cloud, tt.opts) // the real clock: only the cancel can end the wait
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if _, err := p.StartInstances(ctx, []string{id(0)}); err != nil {
				t.Fatal(err)
			}
			time.AfterFunc(10*time.Millisecond, cancel)
			_, err := p.StartInstances(ctx, []string{id(1)})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			want := map[bool]int{true: 1, false: 2}[tt.fault == nil]
			if got := cloud.Stats().Calls["StartInstances"]; got != want {
				t.Errorf("%d StartInstances calls, want %d", got, want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts fleet.Options
		ok   bool
	}{
		{"zero", fleet.Options{}, true},
		{"ec2", fleet.Options{Limits: fleet.EC2Limits(), Batch: fleet.BatchSizes{Describe: 1000, Mutate: 1, Terminate: 1000}}, true},
		{"batch over EC2's maximum", fleet.Options{Batch: fleet.BatchSizes{Terminate: 1001}}, false},
		{"tag batch over EC2's maximum", fleet.Options{Batch: fleet.BatchSizes{Tag: 1001}}, false},
		{"tag batch at EC2's maximum", fleet.Options{Batch: fleet.BatchSizes{Tag: 1000}}, true},
		{"negative burst", fleet.Options{Limits: fleet.Limits{Mutate: fleet.Bucket{Burst: -1}}}, false},
		{"max below base", fleet.Options{BaseDelay: time.Second, MaxDelay: time.Millisecond}, false},
		{"negative attempts", fleet.Options{MaxAttempts: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.opts.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok: %v", err, tt.ok)
			}
		})
	}
}

// TestTags checks what the wrapper adds to the tag calls: an unknown id among
// many costs a few calls, not the whole batch; the tag buckets are the
// mutating class's; and a throttled tag call is retried.
func TestTags(t *testing.T) {
	t.Parallel()
	t.Run("an unknown id is set aside", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sim.Options{Instances: instances(60, nil), Limits: sim.Limits{Unlimited: true}}, fleet.Options{}, nil)
		unknown := "i-0123456789abcdef0"
		asked := append(ids(0, 30), append([]string{unknown}, ids(30, 60)...)...)
		err := b.fleet.TagInstances(t.Context(), asked, map[string]string{"expiry": "friday"})
		if failed := steps.Failures(err); len(failed) != 1 || switchboard.ErrorCode(failed[unknown]) != switchboard.ENOTFOUND {
			t.Fatalf("err = %v, want only %s failed, not found", err, unknown)
		}
		for _, d := range b.cloud.Instances() {
			if d.Tags["expiry"] != "friday" {
				t.Errorf("%s was not tagged: %v", d.ID, d.Tags)
			}
		}
		// The cloud names the unknown id, so its batch of 50 is asked
		// again without it rather than halved: 50, 49, then the last 11.
		if s := b.fleet.Stats(); s.Calls["CreateTags"] != 3 {
			t.Errorf("%d CreateTags calls, want 3", s.Calls["CreateTags"])
		}
	})
	t.Run("within the mutating bucket", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sim.Options{Instances: instances(10, nil), Limits: sim.Limits{Mutate: sim.Bucket{Burst: 2, PerSecond: 1}}},
			fleet.Options{Limits: fleet.Limits{Mutate: fleet.Bucket{Burst: 2, PerSecond: 1}}, Batch: fleet.BatchSizes{Tag: 1}}, nil)
		if err := b.fleet.TagInstances(t.Context(), ids(0, 10), map[string]string{"pin": "x"}); err != nil {
			t.Fatal(err)
		}
		if err := b.fleet.UntagInstances(t.Context(), ids(0, 10), []string{"pin"}); err != nil {
			t.Fatal(err)
		}
		if s := b.cloud.Stats(); s.Throttled != 0 || s.Calls["CreateTags"] != 10 || s.Calls["DeleteTags"] != 10 {
			t.Errorf("cloud stats %+v, want 10 calls of each and none throttled", s)
		}
		if waited := b.fleet.Stats().TokenWait; waited < 8*time.Second {
			t.Errorf("waited %s for tokens, want at least 8s for each call's 8 beyond the burst", waited)
		}
	})
	t.Run("throttled, then retried", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sim.Options{Instances: instances(3, nil)}, fleet.Options{}, nil)
		b.cloud.InjectFault(sim.Fault{Action: "DeleteTags", Times: 2, Err: &switchboard.CloudError{Code: "RequestLimitExceeded", Kind: switchboard.ETHROTTLED}})
		if err := b.fleet.UntagInstances(t.Context(), ids(0, 3), []string{"env"}); err != nil {
			t.Fatal(err)
		}
		if s := b.fleet.Stats(); s.Calls["DeleteTags"] != 3 || s.Throttled != 2 || s.Retries != 2 {
			t.Errorf("stats %+v, want 3 DeleteTags calls, 2 throttled and retried", s)
		}
		for _, d := range b.cloud.Instances() {
			if _, ok := d.Tags["env"]; ok {
				t.Errorf("%s still has env after the retried untag", d.ID)
			}
		}
	})
}

// silent is a cloud that takes every describe and never answers it.
type silent struct {
	*sim.Cloud
	calls atomic.Int32
}

func (s *silent) DescribeInstances(ctx context.Context, _ switchboard.Filter) ([]switchboard.Instance, error) {
	s.calls.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

// A call the cloud leaves unanswered is an outage after CallTimeout, not a
// wait as long as the caller's, and is made twice at most: the engine hears
// of a silent cloud, and tells the channel, within a minute.
func TestSilentCloud(t *testing.T) {
	t.Parallel()
	var s *silent
	b := setup(t, sim.Options{}, fleet.Options{CallTimeout: 20 * time.Millisecond}, func(c *sim.Cloud) switchboard.Provider {
		s = &silent{Cloud: c}
		return s
	})
	_, err := b.fleet.DescribeInstances(t.Context(), switchboard.Filter{})
	var ce *switchboard.CloudError
	if !errors.As(err, &ce) || ce.Code != "Timeout" || ce.Kind != switchboard.EUNAVAILABLE || ce.Message != "DescribeInstances got no answer within 20ms" {
		t.Errorf("err = %v, want a Timeout outage", err)
	}
	if n := s.calls.Load(); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
}
