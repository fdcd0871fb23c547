package sim_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/sim"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// Ids for seeded instances, one per state, in EC2's long form.
const (
	idPending      = "i-0000000000000000a"
	idRunning      = "i-0000000000000000b"
	idStopping     = "i-0000000000000000c"
	idStopped      = "i-0000000000000000d"
	idShuttingDown = "i-0000000000000000e"
	idTerminated   = "i-0000000000000000f"
	idUnknown      = "i-0123456789abcdef0"
)

var idByState = map[switchboard.InstanceState]string{
	switchboard.StatePending:      idPending,
	switchboard.StateRunning:      idRunning,
	switchboard.StateStopping:     idStopping,
	switchboard.StateStopped:      idStopped,
	switchboard.StateShuttingDown: idShuttingDown,
	switchboard.StateTerminated:   idTerminated,
}

// fleet is one instance in every state.
func fleet() []switchboard.Instance {
	var out []switchboard.Instance
	for state, id := range idByState {
		out = append(out, switchboard.Instance{ID: id, State: state, Name: "web-" + string(state), Tags: map[string]string{"team": "web"}})
	}
	return out
}

// setup returns an unthrottled cloud on a hand-driven clock with the default
// transition durations.
func setup(t *testing.T, opts sim.Options) (*sim.Cloud, *sim.Clock) {
	t.Helper()
	clock := sim.NewClock(t0)
	opts.NowFunc = clock.Now
	if opts.Limits == (sim.Limits{}) {
		opts.Limits = sim.Limits{Unlimited: true}
	}
	return sim.New(opts), clock
}

func state(t *testing.T, c *sim.Cloud, id string) switchboard.InstanceState {
	t.Helper()
	d, ok := c.Instance(id)
	if !ok {
		return ""
	}
	return d.State
}

func describeOne(t *testing.T, c *sim.Cloud, id string) switchboard.Instance {
	t.Helper()
	got, err := c.DescribeInstances(context.Background(), switchboard.Filter{IDs: []string{id}})
	if err != nil {
		t.Fatalf("describe %s: %v", id, err)
	}
	if len(got) != 1 {
		t.Fatalf("describe %s: got %d instances, want 1", id, len(got))
	}
	return got[0]
}

// wantCloudError checks that err is a *switchboard.CloudError with the code,
// kind and (when given) ids.
func wantCloudError(t *testing.T, err error, code, kind string, ids ...string) *switchboard.CloudError {
	t.Helper()
	var ce *switchboard.CloudError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a CloudError %s", err, code)
	}
	if ce.Code != code || ce.Kind != kind {
		t.Fatalf("err = %s (kind %s), want %s (kind %s)", ce, ce.Kind, code, kind)
	}
	if len(ids) > 0 && !slices.Equal(ce.IDs, ids) {
		t.Fatalf("err IDs = %v, want %v", ce.IDs, ids)
	}
	return ce
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	const (
		pending      = switchboard.StatePending
		running      = switchboard.StateRunning
		stopping     = switchboard.StateStopping
		stopped      = switchboard.StateStopped
		shuttingDown = switchboard.StateShuttingDown
		terminated   = switchboard.StateTerminated
	)
	tests := []struct {
		action  string
		from    switchboard.InstanceState
		current switchboard.InstanceState // what the call answers
		later   switchboard.InstanceState // what Describe says a minute on
		errMsg  string                    // when set, the call fails with IncorrectInstanceState and this message
	}{
		{"start", pending, pending, running, ""},
		{"start", running, running, running, ""},
		{"start", stopped, pending, running, ""},
		{"start", stopping, "", stopped, "The instance '" + idStopping + "' is not in a state from which it can be started."},
		{"start", shuttingDown, "", terminated, "The instance '" + idShuttingDown + "' is not in a state from which it can be started."},
		{"start", terminated, "", terminated, "The instance '" + idTerminated + "' is not in a state from which it can be started."},

		{"stop", running, stopping, stopped, ""},
		{"stop", stopping, stopping, stopped, ""},
		{"stop", stopped, stopped, stopped, ""},
		{"stop", pending, "", running, "The instance '" + idPending + "' is not in a state from which it can be stopped."},
		{"stop", shuttingDown, "", terminated, "The instance '" + idShuttingDown + "' is not in a state from which it can be stopped."},
		{"stop", terminated, "", terminated, "The instance '" + idTerminated + "' is not in a state from which it can be stopped."},

		{"reboot", running, running, running, ""},
		{"reboot", pending, "", running, "The instance '" + idPending + "' is not in a state from which it can be rebooted."},
		{"reboot", stopping, "", stopped, "The instance '" + idStopping + "' is not in a state from which it can be rebooted."},
		{"reboot", stopped, "", stopped, "The instance '" + idStopped + "' is not in a state from which it can be rebooted."},
		{"reboot", shuttingDown, "", terminated, "The instance '" + idShuttingDown + "' is not in a state from which it can be rebooted."},
		{"reboot", terminated, "", terminated, "The instance '" + idTerminated + "' is not in a state from which it can be rebooted."},

		{"terminate", pending, shuttingDown, terminated, ""},
		{"terminate", running, shuttingDown, terminated, ""},
		{"terminate", stopping, shuttingDown, terminated, ""},
		{"terminate", stopped, shuttingDown, terminated, ""},
		{"terminate", shuttingDown, shuttingDown, terminated, ""},
		{"terminate", terminated, terminated, terminated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.action+"/"+string(tt.from), func(t *testing.T) {
			t.Parallel()
			c, clock := setup(t, sim.Options{Instances: fleet()})
			ctx := context.Background()
			id := idByState[tt.from]

			var changes []switchboard.StateChange
			var err error
			switch tt.action {
			case "start":
				changes, err = c.StartInstances(ctx, []string{id})
			case "stop":
				changes, err = c.StopInstances(ctx, []string{id}, switchboard.StopOptions{})
			case "reboot":
				err = c.RebootInstances(ctx, []string{id})
				if err == nil {
					changes = []switchboard.StateChange{{ID: id, Previous: tt.from, Current: state(t, c, id)}}
				}
			case "terminate":
				changes, err = c.TerminateInstances(ctx, []string{id})
			}

			if tt.errMsg != "" {
				ce := wantCloudError(t, err, "IncorrectInstanceState", switchboard.ECONFLICT, id)
				if ce.Message != tt.errMsg {
					t.Errorf("message = %q, want %q", ce.Message, tt.errMsg)
				}
				if got := state(t, c, id); got != tt.from {
					t.Errorf("after the refused call the state is %s, want it unchanged: %s", got, tt.from)
				}
			} else {
				if err != nil {
					t.Fatalf("%s %s: %v", tt.action, id, err)
				}
				want := []switchboard.StateChange{{ID: id, Previous: tt.from, Current: tt.current}}
				if !slices.Equal(changes, want) {
					t.Errorf("changes = %+v, want %+v", changes, want)
				}
				if got := describeOne(t, c, id).State; got != tt.current {
					t.Errorf("describe right after: %s, want %s", got, tt.current)
				}
			}

			clock.Advance(time.Minute)
			if got := describeOne(t, c, id).State; got != tt.later {
				t.Errorf("describe a minute on: %s, want %s", got, tt.later)
			}
		})
	}
}

func TestTransitionTiming(t *testing.T) {
	t.Parallel()
	type step struct {
		after time.Duration // since the call
		want  switchboard.InstanceState
	}
	tests := []struct {
		name  string
		opts  sim.Options
		from  switchboard.InstanceState
		call  func(*sim.Cloud, string) error
		steps []step
	}{
		{
			name: "start takes the default 5s",
			from: switchboard.StateStopped,
			call: start,
			steps: []step{
				{0, switchboard.StatePending},
				{5*time.Second - time.Nanosecond, switchboard.StatePending},
				{5 * time.Second, switchboard.StateRunning},
			},
		},
		{
			name: "stop takes the default 4s",
			from: switchboard.StateRunning,
			call: stop,
			steps: []step{
				{4*time.Second - time.Nanosecond, switchboard.StateStopping},
				{4 * time.Second, switchboard.StateStopped},
			},
		},
		{
			name: "terminate takes the default 3s, then an hour in sight",
			from: switchboard.StateRunning,
			call: terminate,
			steps: []step{
				{3*time.Second - time.Nanosecond, switchboard.StateShuttingDown},
				{3 * time.Second, switchboard.StateTerminated},
				{3*time.Second + time.Hour - time.Nanosecond, switchboard.StateTerminated},
				{3*time.Second + time.Hour, ""},
			},
		},
		{
			name: "custom durations",
			opts: sim.Options{PendingDuration: 20 * time.Second},
			from: switchboard.StateStopped,
			call: start,
			steps: []step{
				{19 * time.Second, switchboard.StatePending},
				{20 * time.Second, switchboard.StateRunning},
			},
		},
		{
			name:  "instant start still answers pending, then is running",
			opts:  sim.Options{PendingDuration: sim.Instant},
			from:  switchboard.StateStopped,
			call:  start,
			steps: []step{{0, switchboard.StateRunning}},
		},
		{
			name:  "instant terminate",
			opts:  sim.Options{ShuttingDownDuration: sim.Instant},
			from:  switchboard.StateRunning,
			call:  terminate,
			steps: []step{{0, switchboard.StateTerminated}, {time.Hour, ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Instances = []switchboard.Instance{{ID: idRunning, State: tt.from}}
			c, clock := setup(t, tt.opts)
			if err := tt.call(c, idRunning); err != nil {
				t.Fatal(err)
			}
			var elapsed time.Duration
			for _, s := range tt.steps {
				clock.Advance(s.after - elapsed)
				elapsed = s.after
				if got := state(t, c, idRunning); got != s.want {
					t.Errorf("%v after the call: state %q, want %q", s.after, got, s.want)
				}
			}
		})
	}
}

func start(c *sim.Cloud, id string) error {
	ch, err := c.StartInstances(context.Background(), []string{id})
	if err == nil && ch[0].Current != switchboard.StatePending {
		err = fmt.Errorf("start answered %s, want pending", ch[0].Current)
	}
	return err
}

func stop(c *sim.Cloud, id string) error {
	_, err := c.StopInstances(context.Background(), []string{id}, switchboard.StopOptions{})
	return err
}

func terminate(c *sim.Cloud, id string) error {
	_, err := c.TerminateInstances(context.Background(), []string{id})
	return err
}

func TestTerminatedLeavesDescribeAfterAnHour(t *testing.T) {
	t.Parallel()
	c, clock := setup(t, sim.Options{Instances: []switchboard.Instance{{ID: idRunning}, {ID: idStopped, State: switchboard.StateStopped}}})
	ctx := context.Background()
	if err := terminate(c, idRunning); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3*time.Second + time.Hour)

	all, err := c.DescribeInstances(ctx, switchboard.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].ID != idStopped {
		t.Errorf("describe all = %+v, want only %s", all, idStopped)
	}
	_, err = c.DescribeInstances(ctx, switchboard.Filter{IDs: []string{idRunning}})
	wantCloudError(t, err, "InvalidInstanceID.NotFound", switchboard.ENOTFOUND, idRunning)
	_, err = c.TerminateInstances(ctx, []string{idRunning})
	wantCloudError(t, err, "InvalidInstanceID.NotFound", switchboard.ENOTFOUND, idRunning)
}

func TestRebootStaysRunning(t *testing.T) {
	t.Parallel()
	c, clock := setup(t, sim.Options{Instances: []switchboard.Instance{{ID: idRunning}}})
	before := describeOne(t, c, idRunning)
	if err := c.RebootInstances(context.Background(), []string{idRunning}); err != nil {
		t.Fatal(err)
	}
	d, _ := c.Instance(idRunning)
	if d.State != switchboard.StateRunning || !d.Rebooting || d.Reboots != 1 {
		t.Errorf("right after reboot: state %s rebooting %v reboots %d; want running, true, 1", d.State, d.Rebooting, d.Reboots)
	}
	if d.PublicIP != before.PublicIP {
		t.Errorf("reboot changed the public address from %s to %s", before.PublicIP, d.PublicIP)
	}
	clock.Advance(sim.DefaultRebootDuration)
	if d, _ := c.Instance(idRunning); d.Rebooting {
		t.Errorf("still rebooting after %v", sim.DefaultRebootDuration)
	}
}

func TestInstanceErrors(t *testing.T) {
	t.Parallel()
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf("i-%017x", i)
	}
	tests := []struct {
		name    string
		ids     []string
		code    string
		kind    string
		wantIDs []string
		message string
	}{
		{"short id", []string{"i-123"}, "InvalidInstanceID.Malformed", switchboard.EINVALID, []string{"i-123"}, `Invalid id: "i-123" (expecting "i-...")`},
		{"not hex", []string{"i-0123456789abcdefg"}, "InvalidInstanceID.Malformed", switchboard.EINVALID, nil, ""},
		{"upper case", []string{"I-0123456789ABCDEF0"}, "InvalidInstanceID.Malformed", switchboard.EINVALID, nil, ""},
		{"other resource", []string{"sg-01234567"}, "InvalidInstanceID.Malformed", switchboard.EINVALID, nil, ""},
		{"a name", []string{"tools"}, "InvalidInstanceID.Malformed", switchboard.EINVALID, nil, ""},
		{"empty id", []string{""}, "InvalidInstanceID.Malformed", switchboard.EINVALID, nil, ""},
		{"malformed beats unknown", []string{idUnknown, "web-1", idRunning}, "InvalidInstanceID.Malformed", switchboard.EINVALID, []string{"web-1"}, ""},
		{"one unknown", []string{idRunning, idUnknown}, "InvalidInstanceID.NotFound", switchboard.ENOTFOUND, []string{idUnknown}, "The instance ID '" + idUnknown + "' does not exist"},
		{"two unknown", []string{"i-0123abcd", idRunning, idUnknown}, "InvalidInstanceID.NotFound", switchboard.ENOTFOUND, []string{"i-0123abcd", idUnknown}, "The instance IDs 'i-0123abcd, " + idUnknown + "' do not exist"},
		{"no ids", nil, "MissingParameter", switchboard.EINVALID, nil, "The request must contain the parameter InstanceId"},
		{"over 1000 ids", many, "InvalidParameterValue", switchboard.EINVALID, nil, ""},
	}
	calls := map[string]func(*sim.Cloud, []string) error{
		"start": func(c *sim.Cloud, ids []string) error {
			_, err := c.StartInstances(context.Background(), ids)
			return err
		},
		"stop": func(c *sim.Cloud, ids []string) error {
			_, err := c.StopInstances(context.Background(), ids, switchboard.StopOptions{})
			return err
		},
		"reboot": func(c *sim.Cloud, ids []string) error { return c.RebootInstances(context.Background(), ids) },
		"terminate": func(c *sim.Cloud, ids []string) error {
			_, err := c.TerminateInstances(context.Background(), ids)
			return err
		},
		"describe": func(c *sim.Cloud, ids []string) error {
			_, err := c.DescribeInstances(context.Background(), switchboard.Filter{IDs: ids})
			return err
		},
	}
	for _, tt := range tests {
		for action, call := range calls {
			if action == "describe" && tt.ids == nil {
				continue // an empty filter describes everything
			}
			t.Run(action+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				c, _ := setup(t, sim.Options{Instances: []switchboard.Instance{{ID: idRunning}}})
				ce := wantCloudError(t, call(c, tt.ids), tt.code, tt.kind, tt.wantIDs...)
				if tt.message != "" && ce.Message != tt.message {
					t.Errorf("message = %q, want %q", ce.Message, tt.message)
				}
				if got := state(t, c, idRunning); got != switchboard.StateRunning {
					t.Errorf("a failed call changed %s to %s", idRunning, got)
				}
			})
		}
	}
}

func TestCallsFailAsAWhole(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Options{Instances: fleet()})
	ctx := context.Background()

	_, err := c.StartInstances(ctx, []string{idStopped, idStopping, idTerminated})
	ce := wantCloudError(t, err, "IncorrectInstanceState", switchboard.ECONFLICT, idStopping, idTerminated)
	if !strings.Contains(ce.Message, idStopping) {
		t.Errorf("message %q does not name %s", ce.Message, idStopping)
	}
	_, err = c.StopInstances(ctx, []string{idRunning, idPending}, switchboard.StopOptions{})
	wantCloudError(t, err, "IncorrectInstanceState", switchboard.ECONFLICT, idPending)
	_, err = c.TerminateInstances(ctx, []string{idRunning, idUnknown})
	wantCloudError(t, err, "InvalidInstanceID.NotFound", switchboard.ENOTFOUND, idUnknown)

	for id, want := range map[string]switchboard.InstanceState{idStopped: switchboard.StateStopped, idRunning: switchboard.StateRunning} {
		if got := state(t, c, id); got != want {
			t.Errorf("%s is %s after failed calls, want %s", id, got, want)
		}
	}
}

func TestMixedBatch(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Options{Instances: fleet()})
	got, err := c.StartInstances(context.Background(), []string{idStopped, idRunning, idPending, idStopped})
	if err != nil {
		t.Fatal(err)
	}
	want := []switchboard.StateChange{
		{ID: idStopped, Previous: switchboard.StateStopped, Current: switchboard.StatePending},
		{ID: idRunning, Previous: switchboard.StateRunning, Current: switchboard.StateRunning},
		{ID: idPending, Previous: switchboard.StatePending, Current: switchboard.StatePending},
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes = %+v\nwant %+v", got, want)
	}
}

func TestDescribeFilters(t *testing.T) {
	t.Parallel()
	seed := []switchboard.Instance{
		{ID: "i-0000000000000000c", Name: "web-2", Tags: map[string]string{"team": "web", "env": "prod"}},
		{ID: "i-0000000000000000a", Name: "web-1", Tags: map[string]string{"team": "web", "env": "staging"}},
		{ID: "i-0000000000000000b", Name: "db-1", Tags: map[string]string{"team": "data", "env": "prod"}},
		{ID: "i-1234abcd", Tags: map[string]string{"Name": "tools"}, State: switchboard.StateStopped},
	}
	tests := []struct {
		name string
		f    switchboard.Filter
		want []string
	}{
		{"everything, sorted by id", switchboard.Filter{}, []string{"i-0000000000000000a", "i-0000000000000000b", "i-0000000000000000c", "i-1234abcd"}},
		{"one tag", switchboard.Filter{Tags: map[string]string{"team": "web"}}, []string{"i-0000000000000000a", "i-0000000000000000c"}},
		{"every tag must match", switchboard.Filter{Tags: map[string]string{"team": "web", "env": "prod"}}, []string{"i-0000000000000000c"}},
		{"tag missing", switchboard.Filter{Tags: map[string]string{"owner": "ann"}}, nil},
		{"wildcard", switchboard.Filter{Tags: map[string]string{"Name": "web-*"}}, []string{"i-0000000000000000a", "i-0000000000000000c"}},
		{"single-character wildcard", switchboard.Filter{Tags: map[string]string{"Name": "?b-1"}}, []string{"i-0000000000000000b"}},
		{"Name tag from the seed's Name", switchboard.Filter{Tags: map[string]string{"Name": "tools"}}, []string{"i-1234abcd"}},
		{"ids, sorted and once each", switchboard.Filter{IDs: []string{"i-1234abcd", "i-0000000000000000b", "i-1234abcd"}}, []string{"i-0000000000000000b", "i-1234abcd"}},
		{"ids and tags", switchboard.Filter{IDs: []string{"i-0000000000000000a", "i-0000000000000000b"}, Tags: map[string]string{"env": "prod"}}, []string{"i-0000000000000000b"}},
	}
	c, _ := setup(t, sim.Options{Instances: seed})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := c.DescribeInstances(context.Background(), tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, in := range got {
				ids = append(ids, in.ID)
				if in.Name != in.Tags["Name"] {
					t.Errorf("%s: Name %q, Name tag %q", in.ID, in.Name, in.Tags["Name"])
				}
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("ids = %v, want %v", ids, tt.want)
			}
		})
	}
}

func TestDescribeReturnsCopies(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Options{Instances: []switchboard.Instance{{ID: idRunning, Tags: map[string]string{"team": "web"}}}})
	in := describeOne(t, c, idRunning)
	in.Tags["team"] = "changed"
	if got := describeOne(t, c, idRunning).Tags["team"]; got != "web" {
		t.Errorf("changing a described instance's tags changed the cloud: team=%q", got)
	}
}

func TestPublicAddresses(t *testing.T) {
	t.Parallel()
	c, clock := setup(t, sim.Options{Instances: []switchboard.Instance{
		{ID: idStopped, State: switchboard.StateStopped},
		{ID: idRunning, State: switchboard.StateRunning},
	}})
	ctx := context.Background()

	if ip := describeOne(t, c, idRunning).PublicIP; !strings.HasPrefix(ip, "198.51.100.") {
		t.Errorf("a running seed has public address %q, want one from 198.51.100.0/24", ip)
	}
	if ip := describeOne(t, c, idStopped).PublicIP; ip != "" {
		t.Errorf("a stopped instance has public address %q", ip)
	}

	if err := start(c, idStopped); err != nil {
		t.Fatal(err)
	}
	if ip := describeOne(t, c, idStopped).PublicIP; ip != "" {
		t.Errorf("a pending instance has public address %q", ip)
	}
	clock.Advance(5 * time.Second)
	first := describeOne(t, c, idStopped).PublicIP
	if !strings.HasPrefix(first, "198.51.100.") || first == describeOne(t, c, idRunning).PublicIP {
		t.Fatalf("started instance has public address %q, want a fresh one from 198.51.100.0/24", first)
	}

	if err := stop(c, idStopped); err != nil {
		t.Fatal(err)
	}
	if ip := describeOne(t, c, idStopped).PublicIP; ip != first {
		t.Errorf("while stopping the address is %q, want it kept: %q", ip, first)
	}
	clock.Advance(4 * time.Second)
	if ip := describeOne(t, c, idStopped).PublicIP; ip != "" {
		t.Errorf("a stopped instance kept its auto-assigned address %q", ip)
	}

	// An Elastic IP stays through a stop and a start.
	const eip = "203.0.113.77"
	if err := c.AssociateAddress(ctx, idStopped, eip); err != nil {
		t.Fatal(err)
	}
	if ip := describeOne(t, c, idStopped).PublicIP; ip != eip {
		t.Errorf("stopped instance with an Elastic IP shows %q, want %s", ip, eip)
	}
	if err := start(c, idStopped); err != nil {
		t.Fatal(err)
	}
	clock.Advance(5 * time.Second)
	if ip := describeOne(t, c, idStopped).PublicIP; ip != eip {
		t.Errorf("after a start the address is %q, want the Elastic IP %s", ip, eip)
	}
	if err := stop(c, idStopped); err != nil {
		t.Fatal(err)
	}
	clock.Advance(4 * time.Second)
	if ip := describeOne(t, c, idStopped).PublicIP; ip != eip {
		t.Errorf("after a stop the address is %q, want the Elastic IP %s", ip, eip)
	}

	// Moving the Elastic IP to the running instance: the stopped one loses
	// it, the running one swaps its auto-assigned address for it.
	if err := c.AssociateAddress(ctx, idRunning, eip); err != nil {
		t.Fatal(err)
	}
	if ip := describeOne(t, c, idRunning).PublicIP; ip != eip {
		t.Errorf("running instance shows %q after association, want %s", ip, eip)
	}
	if ip := describeOne(t, c, idStopped).PublicIP; ip != "" {
		t.Errorf("the instance the Elastic IP moved off still shows %q", ip)
	}
	// And back: the running instance gets an auto-assigned address again.
	if err := c.AssociateAddress(ctx, idStopped, eip); err != nil {
		t.Fatal(err)
	}
	if ip := describeOne(t, c, idRunning).PublicIP; ip == "" || ip == eip {
		t.Errorf("running instance shows %q after losing the Elastic IP, want a fresh auto-assigned address", ip)
	}

	// Termination lets go of the Elastic IP.
	if err := terminate(c, idStopped); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Second)
	if ip := describeOne(t, c, idStopped).PublicIP; ip != "" {
		t.Errorf("terminated instance shows %q", ip)
	}
	if err := c.AssociateAddress(ctx, idRunning, eip); err != nil {
		t.Fatalf("associating the Elastic IP a terminated instance let go of: %v", err)
	}
}

func TestAssociateAddressErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts sim.Options
		id   string
		ip   string
		code string
		kind string
	}{
		{"not an address", sim.Options{}, idRunning, "tools", "InvalidParameterValue", switchboard.EINVALID},
		{"IPv6", sim.Options{}, idRunning, "2001:db8::1", "InvalidParameterValue", switchboard.EINVALID},
		{"octet out of range", sim.Options{}, idRunning, "203.0.113.300", "InvalidParameterValue", switchboard.EINVALID},
		{"empty address", sim.Options{}, idRunning, "", "InvalidParameterValue", switchboard.EINVALID},
		{"not the account's", sim.Options{ElasticIPs: []string{"203.0.113.10"}}, idRunning, "203.0.113.11", "InvalidAddress.NotFound", switchboard.ENOTFOUND},
		{"another instance's auto-assigned address", sim.Options{}, idRunning, "", "InvalidAddress.NotFound", switchboard.ENOTFOUND},
		{"malformed instance", sim.Options{}, "tools", "203.0.113.10", "InvalidInstanceID.Malformed", switchboard.EINVALID},
		{"unknown instance", sim.Options{}, idUnknown, "203.0.113.10", "InvalidInstanceID.NotFound", switchboard.ENOTFOUND},
		{"no instance", sim.Options{}, "", "203.0.113.10", "MissingParameter", switchboard.EINVALID},
		{"shutting-down", sim.Options{}, idShuttingDown, "203.0.113.10", "IncorrectInstanceState", switchboard.ECONFLICT},
		{"terminated", sim.Options{}, idTerminated, "203.0.113.10", "IncorrectInstanceState", switchboard.ECONFLICT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Instances = fleet()
			c, _ := setup(t, tt.opts)
			ip := tt.ip
			if tt.name == "another instance's auto-assigned address" {
				ip = describeOne(t, c, idStopping).PublicIP
			}
			wantCloudError(t, c.AssociateAddress(context.Background(), tt.id, ip), tt.code, tt.kind)
		})
	}
}

func TestAssociateAddressFromTheAccount(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Options{
		ElasticIPs: []string{"203.0.113.10"},
		Instances:  []switchboard.Instance{{ID: idStopped, State: switchboard.StateStopped}, {ID: idRunning, PublicIP: "203.0.113.10"}},
	})
	if d, _ := c.Instance(idRunning); d.ElasticIP != "203.0.113.10" {
		t.Fatalf("seeded running instance with a listed address has ElasticIP %q", d.ElasticIP)
	}
	if err := c.AssociateAddress(context.Background(), idStopped, "203.0.113.10"); err != nil {
		t.Fatal(err)
	}
	if d, _ := c.Instance(idStopped); d.PublicIP != "203.0.113.10" || d.ElasticIP != "203.0.113.10" {
		t.Errorf("after association: %+v", d)
	}
}

func TestConcurrentStartsChangeOnce(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Options{Instances: []switchboard.Instance{{ID: idStopped, State: switchboard.StateStopped}}})
	const callers = 64
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		started int
		failed  []error
		release = make(chan struct{})
	)
	for range callers {
		wg.Go(func() {
			<-release
			changes, err := c.StartInstances(context.Background(), []string{idStopped})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, err)
				return
			}
			if changes[0].Previous == switchboard.StateStopped && changes[0].Current == switchboard.StatePending {
				started++
			}
		})
	}
	close(release)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d calls failed, first: %v", len(failed), failed[0])
	}
	if started != 1 {
		t.Errorf("%d calls saw stopped->pending, want exactly 1", started)
	}
	if got := c.Stats().Calls["StartInstances"]; got != callers {
		t.Errorf("Stats counted %d StartInstances calls, want %d", got, callers)
	}
}

func TestSeed(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Options{Instances: []switchboard.Instance{{Name: "tools"}}})
	all := c.Instances()
	if len(all) != 1 {
		t.Fatalf("got %d instances, want 1", len(all))
	}
	in := all[0]
	if len(in.ID) != len("i-0123456789abcdef0") || in.State != switchboard.StateRunning || in.Tags["Name"] != "tools" || in.PrivateIP == "" || !in.LaunchTime.Equal(t0) {
		t.Errorf("seeded instance = %+v", in)
	}

	bad := []struct {
		opts sim.Options
		want string
	}{
		{sim.Options{Instances: []switchboard.Instance{{ID: "i-bp1a2b3c4d5e6f7g8h9i"}}}, `Options.Instances[0]: id "i-bp1a2b3c4d5e6f7g8h9i" is not an EC2 instance id`},
		{sim.Options{Instances: []switchboard.Instance{{ID: idRunning}, {ID: idRunning}}}, "Options.Instances[1]: id " + idRunning + " is already used by Options.Instances[0]"},
		{sim.Options{Instances: []switchboard.Instance{{ID: idRunning, State: "sleeping"}}}, `Options.Instances[0]: unknown state "sleeping"`},
		{sim.Options{Instances: []switchboard.Instance{{PublicIP: "203.0.113.9"}, {PublicIP: "203.0.113.9"}}}, "Options.Instances[1]: public IP 203.0.113.9 is already Options.Instances[0]'s"},
		{sim.Options{Instances: []switchboard.Instance{{PublicIP: "web"}}}, `Options.Instances[0]: public IP "web" is not an IPv4 address`},
		{sim.Options{ElasticIPs: []string{"107.20.248.29", "::1"}}, `Options.ElasticIPs[1]: "::1" is not an IPv4 address`},
	}
	for _, tt := range bad {
		err := tt.opts.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", tt.opts)
				}
			}()
			sim.New(tt.opts)
		}()
	}
	if err := (sim.Options{Instances: fleet(), ElasticIPs: []string{"107.20.248.29"}}).Validate(); err != nil {
		t.Errorf("Validate() of a good fleet: %v", err)
	}
}

func TestLatencyEndsWithTheContext(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Options{Latency: time.Hour, Instances: []switchboard.Instance{{ID: idRunning}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.DescribeInstances(ctx, switchboard.Filter{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if s := c.Stats(); s.Calls["DescribeInstances"] != 1 || s.Failed != 1 {
		t.Errorf("stats = %+v, want one failed DescribeInstances", s)
	}
}
