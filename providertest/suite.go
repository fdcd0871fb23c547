// Package providertest is the conformance suite of switchboard.Provider: one
// set of cases with one set of expected outcomes, run against every cloud
// Switchboard speaks to (the simulated cloud, AWS EC2 on moto, Alibaba ECS on
// its test server), the way a database library runs one driver suite on
// every driver. Code above the providers (the fleet layer, the engine's
// steps) is written against what this suite asserts, so a provider that
// passes it can be put under them.
//
// # Running it for a new cloud
//
// The cloud's package adds one test that calls [Run] with a function making
// a [Bundle] for each case:
//
//	func TestConformance(t *testing.T) {
//		t.Parallel()
//		providertest.Run(t, func(t *testing.T) providertest.Bundle {
//			p := newTestProvider(t) // on a fresh test account, or a shared one
//			return providertest.Bundle{
//				Provider:  p,
//				SeedFunc:  seed,    // n instances, running or stopped, with tags
//				Launch:    switchboard.LaunchSpec{ImageID: "img-...", Type: "..."},
//				UnknownID: "i-...", // in the cloud's own form
//			}
//		})
//	}
//
// Every case runs in parallel with a bundle of its own, and tags everything
// it makes with a key of its own, so bundles may share one account (moto's
// region, a real test account). Fill ElasticIPFunc and DenyFunc where the
// test peer can allocate an address or take a permission away; the cases
// that need them are skipped otherwise. Where the cloud's own API cannot be
// brought to the outcome the others have, set the field of [Differences]
// that says so, with a comment on why; a difference that no field describes
// is a bug to fix in the provider, or a new field to add here for every
// provider to see.
//
// The suites run with each package's tests, and on their own with
//
//	go test -run TestConformance ./sim/ ./fleet/ ./aws/ ./alibaba/
package providertest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Bundle is what the suite needs of a provider for one case.
type Bundle struct {
	// Provider is the provider under test.
	Provider switchboard.Provider

	// SeedFunc makes n instances in state (StateRunning or StateStopped)
	// with tags (a Name tag among them is the instance's name), and returns
	// their ids once they are in that state. It may go around Provider (a
	// test server's seeding API) or through it (RunInstances, then
	// StopInstances).
	SeedFunc func(t *testing.T, n int, state switchboard.InstanceState, tags map[string]string) []string

	// Launch is a launch the cloud accepts: an image it knows and, where
	// the cloud has no default, an instance type. The cases add Count, Tags
	// and ClientToken.
	Launch switchboard.LaunchSpec

	// UnknownID is an instance id in the cloud's own form that names no
	// instance.
	UnknownID string

	// WaitFunc lets time pass on the cloud's clock before the suite looks
	// again for instances to reach a state. Nil sleeps 100ms.
	WaitFunc func()

	// ElasticIPFunc allocates an Elastic IP address in the account and
	// returns it. Nil skips the AssociateAddress case.
	ElasticIPFunc func(t *testing.T) string

	// DenyFunc takes the permission for action (start, stop, reboot,
	// terminate) away from the provider's credentials. Nil skips the case
	// of a dry run that is refused.
	DenyFunc func(t *testing.T, action string)

	Differences Differences
}

// Differences are the known ways a provider's outcomes differ from the
// others', each forced by its cloud's API or its test peer. A provider
// should need as few as possible; each one set says why where it is set.
type Differences struct {
	// NoStateChecks: the cloud acts whatever an instance's state is. A
	// start or stop of an instance already there answers a transition
	// (running -> pending) instead of no change, and a reboot of a stopped
	// instance is not refused. The instance still ends in the state asked
	// for.
	NoStateChecks bool

	// TerminatesOnlyStopped: terminating a running instance is refused
	// with ECONFLICT and the instance keeps running; only stopped instances
	// are terminated.
	TerminatesOnlyStopped bool

	// TerminateDeletes: a terminate deletes the instance at once. The call
	// answers terminated rather than shutting-down, and the instance
	// leaves DescribeInstances, so naming it afterwards is ENOTFOUND,
	// instead of staying visible as terminated for a while.
	TerminateDeletes bool

	// IsolatesFailures: a call naming ids that fail on their own (an
	// unknown id) still acts on the others, and answers their results with
	// a *switchboard.PartialError naming the ids that failed, instead of
	// failing as a whole and changing nothing.
	IsolatesFailures bool

	// TagsIgnoreUnknownIDs: TagInstances and UntagInstances do not look
	// their ids up. An unknown id is no error, alone or among known ones,
	// and the known ones are tagged or untagged, instead of the call
	// failing with ENOTFOUND and changing nothing.
	TagsIgnoreUnknownIDs bool
}

// tagKey is the tag every instance a case makes carries, with the case's
// own key as its value.
const tagKey = "providertest"

// unheldAddress is an address no test account holds (TEST-NET-1).
const unheldAddress = "192.0.2.254"

// polls is how many times the suite looks for a state before it gives up.
const polls = 100

var caseN atomic.Int64

// fixture is one case's bundle with the context and key it works under.
type fixture struct {
	Bundle
	ctx context.Context
	key string
}

// Run runs every case of the suite as a parallel subtest of t, each with a
// bundle newBundle makes for it.
func Run(t *testing.T, newBundle func(t *testing.T) Bundle) {
	t.Helper()
	cases := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"DescribeByID", testDescribeByID},
		{"DescribeByTag", testDescribeByTag},
		{"DescribeEmptyFilterListsAll", testDescribeAll},
		{"UnknownIDIsNotFound", testUnknownID},
		{"StartStopped", testStartStopped},
		{"StopRunning", testStopRunning},
		{"StartRunningIsIdempotent", testStartRunning},
		{"StopStoppedIsIdempotent", testStopStopped},
		{"RebootRunning", testRebootRunning},
		{"RebootStoppedIsRefused", testRebootStopped},
		{"TerminateStopped", testTerminateStopped},
		{"TerminateRunning", testTerminateRunning},
		{"RunInstances", testRunInstances},
		{"RunInstancesClientToken", testRunInstancesClientToken},
		{"AssociateAddress", testAssociateAddress},
		{"DryRunAllowed", testDryRunAllowed},
		{"DryRunForbidden", testDryRunForbidden},
		{"BatchWithUnknownID", testBatchWithUnknownID},
		{"TagInstances", testTagInstances},
		{"TagInstancesOverwrites", testTagOverwrites},
		{"TagSeveralInstances", testTagSeveral},
		{"UntagInstances", testUntagInstances},
		{"TagUnknownIDIsNotFound", testTagUnknownID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t)
			switch {
			case b.Provider == nil, b.SeedFunc == nil, b.UnknownID == "", b.Launch.ImageID == "":
				t.Fatal("providertest: the bundle needs Provider, SeedFunc, UnknownID and Launch.ImageID")
			}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			t.Cleanup(cancel)
			key := fmt.Sprintf("pt-%x-%d", time.Now().UnixNano(), caseN.Add(1))
			c.run(t, &fixture{Bundle: b, ctx: ctx, key: key})
		})
	}
}

const (
	running      = switchboard.StateRunning
	stopped      = switchboard.StateStopped
	pending      = switchboard.StatePending
	stopping     = switchboard.StateStopping
	shuttingDown = switchboard.StateShuttingDown
	terminated   = switchboard.StateTerminated
)

// tags are the case's tags with extra added.
func (f *fixture) tags(extra map[string]string) map[string]string {
	out := map[string]string{tagKey: f.key}
	maps.Copy(out, extra)
	return out
}

// seed makes n instances in state, tagged with the case's key and extra.
func (f *fixture) seed(t *testing.T, n int, state switchboard.InstanceState, extra map[string]string) []string {
	t.Helper()
	ids := f.SeedFunc(t, n, state, f.tags(extra))
	if len(ids) != n {
		t.Fatalf("SeedFunc made %d instances, want %d", len(ids), n)
	}
	return ids
}

func (f *fixture) wait() {
	if f.WaitFunc != nil {
		f.WaitFunc()
		return
	}
	time.Sleep(100 * time.Millisecond)
}

// describe describes ids and returns their states by id.
func (f *fixture) describe(t *testing.T, ids ...string) map[string]switchboard.Instance {
	t.Helper()
	got, err := f.Provider.DescribeInstances(f.ctx, switchboard.Filter{IDs: ids})
	if err != nil {
		t.Fatalf("DescribeInstances(%v): %v", ids, err)
	}
	out := make(map[string]switchboard.Instance, len(got))
	for _, in := range got {
		out[in.ID] = in
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			t.Fatalf("DescribeInstances(%v) left out %s: %v", ids, id, instanceIDs(got))
		}
	}
	return out
}

// expectStates checks that every one of ids is in one of the states.
func (f *fixture) expectStates(t *testing.T, when string, ids []string, states ...switchboard.InstanceState) {
	t.Helper()
	for id, in := range f.describe(t, ids...) {
		if !slices.Contains(states, in.State) {
			t.Errorf("%s: %s is %s, want %s", when, id, in.State, join(states))
		}
	}
}

// eventually waits until every one of ids is in state.
func (f *fixture) eventually(t *testing.T, ids []string, state switchboard.InstanceState) {
	t.Helper()
	for n := 1; ; n++ {
		var behind []string
		for id, in := range f.describe(t, ids...) {
			if in.State != state {
				behind = append(behind, id+" "+string(in.State))
			}
		}
		if len(behind) == 0 {
			return
		}
		if n == polls {
			t.Fatalf("after %d looks, not yet %s: %v", polls, state, behind)
		}
		f.wait()
	}
}

// terminating is the state a terminate answers.
func (f *fixture) terminating() switchboard.InstanceState {
	if f.Differences.TerminateDeletes {
		return terminated
	}
	return shuttingDown
}

// eventuallyTerminated waits until id is terminated, or gone from
// DescribeInstances where a terminate deletes.
func (f *fixture) eventuallyTerminated(t *testing.T, id string) {
	t.Helper()
	if f.Differences.TerminateDeletes {
		_, err := f.Provider.DescribeInstances(f.ctx, switchboard.Filter{IDs: []string{id}})
		if code := switchboard.ErrorCode(err); code != switchboard.ENOTFOUND {
			t.Fatalf("DescribeInstances of a terminated instance = %v (%q), want ENOTFOUND: it leaves at once", err, code)
		}
		return
	}
	f.eventually(t, []string{id}, terminated)
}

// expectChanges checks that changes report each of ids once, from prev to
// one of cur.
func expectChanges(t *testing.T, call string, changes []switchboard.StateChange, ids []string, prev switchboard.InstanceState, cur ...switchboard.InstanceState) {
	t.Helper()
	got := make([]string, 0, len(changes))
	for _, c := range changes {
		got = append(got, c.ID)
		if c.Previous != prev || !slices.Contains(cur, c.Current) {
			t.Errorf("%s answered %s: %s -> %s, want %s -> %s", call, c.ID, c.Previous, c.Current, prev, join(cur))
		}
	}
	if !sameSet(got, ids) {
		t.Errorf("%s answered changes for %v, want one for each of %v", call, got, ids)
	}
}

// expectCode checks that err has the domain error code.
func expectCode(t *testing.T, call string, err error, code string) {
	t.Helper()
	if got := switchboard.ErrorCode(err); got != code {
		t.Fatalf("%s = %v (code %q), want code %q", call, err, got, code)
	}
}

// expectNames checks that err names id among the instances it is about.
func expectNames(t *testing.T, call string, err error, id string) {
	t.Helper()
	var ce *switchboard.CloudError
	if errors.As(err, &ce) && slices.Contains(ce.IDs, id) {
		return
	}
	t.Errorf("%s = %v, want a CloudError naming %s", call, err, id)
}

// expectPartial checks that err is a *switchboard.PartialError in which
// exactly id failed, with code.
func expectPartial(t *testing.T, call string, err error, id, code string) {
	t.Helper()
	var pe *switchboard.PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("%s = %v (%T), want a *switchboard.PartialError", call, err, err)
	}
	if len(pe.Failed) != 1 || pe.Failed[id] == nil {
		t.Fatalf("%s failed for %v, want only %s", call, slices.Collect(maps.Keys(pe.Failed)), id)
	}
	if got := switchboard.ErrorCode(pe.Failed[id]); got != code {
		t.Errorf("%s: %s failed with %v (code %q), want code %q", call, id, pe.Failed[id], got, code)
	}
}

func testDescribeByID(t *testing.T, f *fixture) {
	ids := f.seed(t, 3, running, map[string]string{"Name": "pt-web"})
	asked := []string{ids[2], ids[0]}
	got, err := f.Provider.DescribeInstances(f.ctx, switchboard.Filter{IDs: asked})
	if err != nil {
		t.Fatalf("DescribeInstances: %v", err)
	}
	if want := sorted(asked); !slices.Equal(instanceIDs(got), want) {
		t.Errorf("DescribeInstances(%v) = %v, want %v: those asked for, sorted by id", asked, instanceIDs(got), want)
	}
	for _, in := range got {
		if in.State != running || in.Name != "pt-web" || in.Tags["Name"] != "pt-web" || in.Tags[tagKey] != f.key {
			t.Errorf("described %+v, want running, named pt-web, with its tags", in)
		}
		if in.Type == "" || in.PrivateIP == "" || in.LaunchTime.IsZero() {
			t.Errorf("described %+v, want its type, private address and launch time", in)
		}
	}
}

func testDescribeByTag(t *testing.T, f *fixture) {
	web := f.seed(t, 2, running, map[string]string{"role": "web"})
	db := f.seed(t, 1, stopped, map[string]string{"role": "db"})
	tests := []struct {
		name   string
		filter switchboard.Filter
		want   []string
	}{
		{"one tag", switchboard.Filter{Tags: f.tags(nil)}, append(slices.Clone(web), db...)},
		{"every tag must match", switchboard.Filter{Tags: f.tags(map[string]string{"role": "web"})}, web},
		{"ids and tags", switchboard.Filter{IDs: []string{web[0], db[0]}, Tags: f.tags(map[string]string{"role": "db"})}, db},
		{"no match", switchboard.Filter{Tags: f.tags(map[string]string{"role": "cache"})}, nil},
	}
	for _, tt := range tests {
		got, err := f.Provider.DescribeInstances(f.ctx, tt.filter)
		if err != nil {
			t.Errorf("%s: DescribeInstances: %v", tt.name, err)
			continue
		}
		if want := sorted(tt.want); !slices.Equal(instanceIDs(got), want) {
			t.Errorf("%s: DescribeInstances(%+v) = %v, want %v, sorted by id", tt.name, tt.filter, instanceIDs(got), want)
		}
	}
}

func testDescribeAll(t *testing.T, f *fixture) {
	ids := append(f.seed(t, 1, running, nil), f.seed(t, 1, stopped, nil)...)
	got, err := f.Provider.DescribeInstances(f.ctx, switchboard.Filter{})
	if err != nil {
		t.Fatalf("DescribeInstances: %v", err)
	}
	all := instanceIDs(got)
	// The account may hold other cases' instances too.
	for _, id := range ids {
		if !slices.Contains(all, id) {
			t.Errorf("an empty filter left out %s", id)
		}
	}
	if !slices.IsSorted(all) {
		t.Errorf("an empty filter answered %v, not sorted by id", all)
	}
}

func testUnknownID(t *testing.T, f *fixture) {
	unknown := []string{f.UnknownID}
	_, err := f.Provider.DescribeInstances(f.ctx, switchboard.Filter{IDs: unknown})
	expectCode(t, "DescribeInstances", err, switchboard.ENOTFOUND)
	expectNames(t, "DescribeInstances", err, f.UnknownID)
	for call, err := range f.calls(unknown) {
		expectCode(t, call, err, switchboard.ENOTFOUND)
		expectNames(t, call, err, f.UnknownID)
	}
}

// calls makes each state-changing call on ids.
func (f *fixture) calls(ids []string) func(yield func(string, error) bool) {
	return func(yield func(string, error) bool) {
		_, err := f.Provider.StartInstances(f.ctx, ids)
		if !yield("StartInstances", err) {
			return
		}
		_, err = f.Provider.StopInstances(f.ctx, ids, switchboard.StopOptions{})
		if !yield("StopInstances", err) {
			return
		}
		if !yield("RebootInstances", f.Provider.RebootInstances(f.ctx, ids)) {
			return
		}
		_, err = f.Provider.TerminateInstances(f.ctx, ids)
		yield("TerminateInstances", err)
	}
}

func testStartStopped(t *testing.T, f *fixture) {
	ids := f.seed(t, 2, stopped, nil)
	changes, err := f.Provider.StartInstances(f.ctx, ids)
	if err != nil {
		t.Fatalf("StartInstances: %v", err)
	}
	expectChanges(t, "StartInstances", changes, ids, stopped, pending)
	f.expectStates(t, "right after the start", ids, pending, running)
	f.eventually(t, ids, running)
}

func testStopRunning(t *testing.T, f *fixture) {
	ids := f.seed(t, 2, running, nil)
	changes, err := f.Provider.StopInstances(f.ctx, ids, switchboard.StopOptions{})
	if err != nil {
		t.Fatalf("StopInstances: %v", err)
	}
	expectChanges(t, "StopInstances", changes, ids, running, stopping)
	f.expectStates(t, "right after the stop", ids, stopping, stopped)
	f.eventually(t, ids, stopped)
}

func testStartRunning(t *testing.T, f *fixture) {
	ids := f.seed(t, 1, running, nil)
	changes, err := f.Provider.StartInstances(f.ctx, ids)
	if err != nil {
		t.Fatalf("StartInstances of a running instance: %v", err)
	}
	if f.Differences.NoStateChecks {
		expectChanges(t, "StartInstances", changes, ids, running, running, pending)
	} else {
		expectChanges(t, "StartInstances", changes, ids, running, running)
		f.expectStates(t, "right after the start", ids, running)
	}
	f.eventually(t, ids, running)
}

func testStopStopped(t *testing.T, f *fixture) {
	ids := f.seed(t, 1, stopped, nil)
	changes, err := f.Provider.StopInstances(f.ctx, ids, switchboard.StopOptions{})
	if err != nil {
		t.Fatalf("StopInstances of a stopped instance: %v", err)
	}
	if f.Differences.NoStateChecks {
		expectChanges(t, "StopInstances", changes, ids, stopped, stopped, stopping)
	} else {
		expectChanges(t, "StopInstances", changes, ids, stopped, stopped)
		f.expectStates(t, "right after the stop", ids, stopped)
	}
	f.eventually(t, ids, stopped)
}

func testRebootRunning(t *testing.T, f *fixture) {
	ids := f.seed(t, 2, running, nil)
	if err := f.Provider.RebootInstances(f.ctx, ids); err != nil {
		t.Fatalf("RebootInstances: %v", err)
	}
	// A rebooting instance is still running, as EC2 reports it.
	f.expectStates(t, "right after the reboot", ids, running)
}

func testRebootStopped(t *testing.T, f *fixture) {
	if f.Differences.NoStateChecks {
		t.Skip("the cloud reboots an instance whatever its state (Differences.NoStateChecks)")
	}
	ids := f.seed(t, 1, stopped, nil)
	err := f.Provider.RebootInstances(f.ctx, ids)
	expectCode(t, "RebootInstances of a stopped instance", err, switchboard.ECONFLICT)
	expectNames(t, "RebootInstances of a stopped instance", err, ids[0])
	f.expectStates(t, "after the refused reboot", ids, stopped)
}

func testTerminateStopped(t *testing.T, f *fixture) {
	ids := f.seed(t, 1, stopped, nil)
	changes, err := f.Provider.TerminateInstances(f.ctx, ids)
	if err != nil {
		t.Fatalf("TerminateInstances: %v", err)
	}
	expectChanges(t, "TerminateInstances", changes, ids, stopped, f.terminating())
	f.eventuallyTerminated(t, ids[0])
}

func testTerminateRunning(t *testing.T, f *fixture) {
	ids := f.seed(t, 1, running, nil)
	changes, err := f.Provider.TerminateInstances(f.ctx, ids)
	if f.Differences.TerminatesOnlyStopped {
		expectCode(t, "TerminateInstances of a running instance", err, switchboard.ECONFLICT)
		f.expectStates(t, "after the refused terminate", ids, running)
		return
	}
	if err != nil {
		t.Fatalf("TerminateInstances: %v", err)
	}
	expectChanges(t, "TerminateInstances", changes, ids, running, f.terminating())
	f.eventuallyTerminated(t, ids[0])
}

func testRunInstances(t *testing.T, f *fixture) {
	spec := f.Launch
	spec.Count = 2
	spec.Tags = f.tags(map[string]string{"Name": "pt-run", "branch": "feature-login"})
	launched, err := f.Provider.RunInstances(f.ctx, spec)
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	ids := instanceIDs(launched)
	if len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("RunInstances launched %v, want two instances", ids)
	}
	for _, in := range launched {
		if in.State != pending && in.State != running {
			t.Errorf("launched %s is %s, want pending or running", in.ID, in.State)
		}
		if in.Name != "pt-run" {
			t.Errorf("launched %s is named %q, want the Name tag pt-run", in.ID, in.Name)
		}
		for k, v := range spec.Tags {
			if in.Tags[k] != v {
				t.Errorf("launched %s has tags %v, want %s=%s among them", in.ID, in.Tags, k, v)
			}
		}
		if want := spec.Type; in.Type == "" || (want != "" && in.Type != want) {
			t.Errorf("launched %s has type %q, want %q (or the cloud's default when empty)", in.ID, in.Type, want)
		}
	}
	found, err := f.Provider.DescribeInstances(f.ctx, switchboard.Filter{Tags: map[string]string{"branch": "feature-login", tagKey: f.key}})
	if err != nil {
		t.Fatalf("DescribeInstances by tag: %v", err)
	}
	if !slices.Equal(instanceIDs(found), sorted(ids)) {
		t.Errorf("DescribeInstances by tag = %v, want the launched %v", instanceIDs(found), sorted(ids))
	}
	f.eventually(t, ids, running)
}

func testRunInstancesClientToken(t *testing.T, f *fixture) {
	spec := f.Launch
	spec.Count = 2
	spec.Tags = f.tags(nil)
	spec.ClientToken = "providertest-" + f.key
	first, err := f.Provider.RunInstances(f.ctx, spec)
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	// The retry of a step: one after the other, never at once, since a
	// provider may keep the promise by looking before launching (package
	// aws against moto).
	again, err := f.Provider.RunInstances(f.ctx, spec)
	if err != nil {
		t.Fatalf("RunInstances with the same ClientToken: %v", err)
	}
	if len(first) != 2 || !sameSet(instanceIDs(again), instanceIDs(first)) {
		t.Errorf("the same ClientToken launched %v, then answered %v; want the first launch's two instances both times", instanceIDs(first), instanceIDs(again))
	}
	all, err := f.Provider.DescribeInstances(f.ctx, switchboard.Filter{Tags: f.tags(nil)})
	if err != nil {
		t.Fatalf("DescribeInstances: %v", err)
	}
	if !sameSet(instanceIDs(all), instanceIDs(first)) {
		t.Errorf("the account holds %v after two launches with one token, want only %v", instanceIDs(all), instanceIDs(first))
	}

	spec.ClientToken += "-next"
	other, err := f.Provider.RunInstances(f.ctx, spec)
	if err != nil {
		t.Fatalf("RunInstances with another ClientToken: %v", err)
	}
	for _, id := range instanceIDs(other) {
		if slices.Contains(instanceIDs(first), id) {
			t.Errorf("another ClientToken answered %s from the first launch, want new instances", id)
		}
	}
}

func testAssociateAddress(t *testing.T, f *fixture) {
	if f.ElasticIPFunc == nil {
		t.Skip("the bundle cannot allocate Elastic IPs (no ElasticIPFunc)")
	}
	ids := f.seed(t, 1, running, nil)
	eip := f.ElasticIPFunc(t)
	if err := f.Provider.AssociateAddress(f.ctx, ids[0], eip); err != nil {
		t.Fatalf("AssociateAddress(%s, %s): %v", ids[0], eip, err)
	}
	if got := f.describe(t, ids[0])[ids[0]].PublicIP; got != eip {
		t.Errorf("after AssociateAddress %s has public address %q, want %s", ids[0], got, eip)
	}

	err := f.Provider.AssociateAddress(f.ctx, f.UnknownID, f.ElasticIPFunc(t))
	expectCode(t, "AssociateAddress to an unknown instance", err, switchboard.ENOTFOUND)
	err = f.Provider.AssociateAddress(f.ctx, ids[0], unheldAddress)
	expectCode(t, "AssociateAddress of an address the account does not hold", err, switchboard.ENOTFOUND)
}

func testDryRunAllowed(t *testing.T, f *fixture) {
	up := f.seed(t, 1, running, nil)
	down := f.seed(t, 1, stopped, nil)
	for _, c := range []struct {
		action string
		ids    []string
	}{{"stop", up}, {"reboot", up}, {"start", down}, {"terminate", down}} {
		if err := f.Provider.DryRun(f.ctx, c.action, c.ids); err != nil {
			t.Errorf("DryRun(%s, %v) = %v, want nil: the call would be allowed", c.action, c.ids, err)
		}
	}
	expectCode(t, "DryRun of an action there is none of", f.Provider.DryRun(f.ctx, "resize", up), switchboard.EINVALID)
	f.expectStates(t, "after the dry runs", up, running)
	f.expectStates(t, "after the dry runs", down, stopped)
}

func testDryRunForbidden(t *testing.T, f *fixture) {
	if f.DenyFunc == nil {
		t.Skip("the bundle cannot take a permission away (no DenyFunc)")
	}
	ids := f.seed(t, 1, running, nil)
	f.DenyFunc(t, "stop")
	expectCode(t, "DryRun of a denied stop", f.Provider.DryRun(f.ctx, "stop", ids), switchboard.EFORBIDDEN)
	if err := f.Provider.DryRun(f.ctx, "reboot", ids); err != nil {
		t.Errorf("DryRun of a reboot, which is not denied = %v, want nil", err)
	}
	f.expectStates(t, "after the dry runs", ids, running)
}

// testBatchWithUnknownID names an unknown id among good ones. A cloud fails
// such a call as a whole, naming the unknown id, and changes nothing; a
// provider that isolates failures acts on the good ones and names the
// unknown one in a PartialError.
// Tagging and untagging are batch calls like the others.
func testBatchWithUnknownID(t *testing.T, f *fixture) {
	unknown := f.UnknownID
	isolates := f.Differences.IsolatesFailures
	with := func(ids []string) []string { return []string{ids[0], unknown, ids[1]} }

	t.Run("describe", func(t *testing.T) {
		ids := f.seed(t, 2, running, nil)
		got, err := f.Provider.DescribeInstances(f.ctx, switchboard.Filter{IDs: with(ids)})
		if isolates {
			expectPartial(t, "DescribeInstances", err, unknown, switchboard.ENOTFOUND)
			if !slices.Equal(instanceIDs(got), sorted(ids)) {
				t.Errorf("DescribeInstances answered %v, want the known %v", instanceIDs(got), sorted(ids))
			}
			return
		}
		expectCode(t, "DescribeInstances", err, switchboard.ENOTFOUND)
		expectNames(t, "DescribeInstances", err, unknown)
	})
	t.Run("start", func(t *testing.T) {
		ids := f.seed(t, 2, stopped, nil)
		changes, err := f.Provider.StartInstances(f.ctx, with(ids))
		if isolates {
			expectPartial(t, "StartInstances", err, unknown, switchboard.ENOTFOUND)
			expectChanges(t, "StartInstances", changes, ids, stopped, pending)
			f.eventually(t, ids, running)
			return
		}
		expectCode(t, "StartInstances", err, switchboard.ENOTFOUND)
		expectNames(t, "StartInstances", err, unknown)
		f.expectStates(t, "after the failed start", ids, stopped)
	})
	t.Run("stop", func(t *testing.T) {
		ids := f.seed(t, 2, running, nil)
		changes, err := f.Provider.StopInstances(f.ctx, with(ids), switchboard.StopOptions{})
		if isolates {
			expectPartial(t, "StopInstances", err, unknown, switchboard.ENOTFOUND)
			expectChanges(t, "StopInstances", changes, ids, running, stopping)
			f.eventually(t, ids, stopped)
			return
		}
		expectCode(t, "StopInstances", err, switchboard.ENOTFOUND)
		expectNames(t, "StopInstances", err, unknown)
		f.expectStates(t, "after the failed stop", ids, running)
	})
	t.Run("reboot", func(t *testing.T) {
		ids := f.seed(t, 2, running, nil)
		err := f.Provider.RebootInstances(f.ctx, with(ids))
		if isolates {
			expectPartial(t, "RebootInstances", err, unknown, switchboard.ENOTFOUND)
		} else {
			expectCode(t, "RebootInstances", err, switchboard.ENOTFOUND)
			expectNames(t, "RebootInstances", err, unknown)
		}
		f.expectStates(t, "after the reboot", ids, running)
	})
	t.Run("tag", func(t *testing.T) {
		ids := f.seed(t, 2, running, nil)
		err := f.Provider.TagInstances(f.ctx, with(ids), map[string]string{"pin": "pt"})
		switch {
		case isolates:
			expectPartial(t, "TagInstances", err, unknown, switchboard.ENOTFOUND)
		case f.Differences.TagsIgnoreUnknownIDs:
			if err != nil {
				t.Fatalf("TagInstances = %v, want nil: the cloud does not look the ids up (Differences.TagsIgnoreUnknownIDs)", err)
			}
		default:
			expectCode(t, "TagInstances", err, switchboard.ENOTFOUND)
			expectNames(t, "TagInstances", err, unknown)
			f.expectTags(t, "after the failed tag", ids, nil, []string{"pin"})
			return
		}
		f.expectTags(t, "after the tag", ids, map[string]string{"pin": "pt"}, nil)
	})
	t.Run("untag", func(t *testing.T) {
		ids := f.seed(t, 2, running, map[string]string{"pin": "pt"})
		err := f.Provider.UntagInstances(f.ctx, with(ids), []string{"pin"})
		switch {
		case isolates:
			expectPartial(t, "UntagInstances", err, unknown, switchboard.ENOTFOUND)
		case f.Differences.TagsIgnoreUnknownIDs:
			if err != nil {
				t.Fatalf("UntagInstances = %v, want nil: the cloud does not look the ids up (Differences.TagsIgnoreUnknownIDs)", err)
			}
		default:
			expectCode(t, "UntagInstances", err, switchboard.ENOTFOUND)
			expectNames(t, "UntagInstances", err, unknown)
			f.expectTags(t, "after the failed untag", ids, map[string]string{"pin": "pt"}, nil)
			return
		}
		f.expectTags(t, "after the untag", ids, nil, []string{"pin"})
	})
	t.Run("terminate", func(t *testing.T) {
		ids := f.seed(t, 2, stopped, nil)
		changes, err := f.Provider.TerminateInstances(f.ctx, with(ids))
		if isolates {
			expectPartial(t, "TerminateInstances", err, unknown, switchboard.ENOTFOUND)
			expectChanges(t, "TerminateInstances", changes, ids, stopped, f.terminating())
			return
		}
		expectCode(t, "TerminateInstances", err, switchboard.ENOTFOUND)
		expectNames(t, "TerminateInstances", err, unknown)
		f.expectStates(t, "after the failed terminate", ids, stopped)
	})
}

// expectTags checks that every one of ids has the tags want (an empty value
// must be there, empty) and none of the keys gone, and still has the case's
// own tag.
func (f *fixture) expectTags(t *testing.T, when string, ids []string, want map[string]string, gone []string) {
	t.Helper()
	for id, in := range f.describe(t, ids...) {
		for k, v := range f.tags(want) {
			if got, ok := in.Tags[k]; !ok || got != v {
				t.Errorf("%s: %s has tags %v, want %s=%q among them", when, id, in.Tags, k, v)
			}
		}
		for _, k := range gone {
			if _, ok := in.Tags[k]; ok {
				t.Errorf("%s: %s has tags %v, want no %s", when, id, in.Tags, k)
			}
		}
	}
}

// findByTags describes the case's instances that also carry extra, sorted
// by id.
func (f *fixture) findByTags(t *testing.T, extra map[string]string) []string {
	t.Helper()
	got, err := f.Provider.DescribeInstances(f.ctx, switchboard.Filter{Tags: f.tags(extra)})
	if err != nil {
		t.Fatalf("DescribeInstances by tags %v: %v", extra, err)
	}
	return instanceIDs(got)
}

// testTagInstances tags one instance, as a branch deploy keeps its
// environment's state: the tags read back from DescribeInstances, an empty
// value as an empty value, the instance's other tags untouched, and
// DescribeInstances finds the instance by the new tag.
func testTagInstances(t *testing.T, f *fixture) {
	ids := f.seed(t, 1, running, map[string]string{"role": "web"})
	tags := map[string]string{"expiry": "2026-12-01T18:00Z", "pin": ""}
	if err := f.Provider.TagInstances(f.ctx, ids, tags); err != nil {
		t.Fatalf("TagInstances(%v, %v): %v", ids, tags, err)
	}
	f.expectTags(t, "after the tag", ids, map[string]string{"role": "web", "expiry": "2026-12-01T18:00Z", "pin": ""}, nil)
	if got := f.findByTags(t, map[string]string{"expiry": "2026-12-01T18:00Z"}); !slices.Equal(got, ids) {
		t.Errorf("DescribeInstances by the new tag = %v, want %v", got, ids)
	}
	expectCode(t, "TagInstances without tags", f.Provider.TagInstances(f.ctx, ids, nil), switchboard.EINVALID)
}

// testTagOverwrites sets keys an instance has: the new values replace the
// old, an empty value replaces a value without removing the key, and keys
// not named keep theirs.
func testTagOverwrites(t *testing.T, f *fixture) {
	ids := f.seed(t, 1, running, map[string]string{"expiry": "monday", "pin": "alice"})
	if err := f.Provider.TagInstances(f.ctx, ids, map[string]string{"expiry": "friday"}); err != nil {
		t.Fatalf("TagInstances: %v", err)
	}
	f.expectTags(t, "after the overwrite", ids, map[string]string{"expiry": "friday", "pin": "alice"}, nil)
	if got := f.findByTags(t, map[string]string{"expiry": "monday"}); len(got) != 0 {
		t.Errorf("DescribeInstances by the old value = %v, want none", got)
	}
	if err := f.Provider.TagInstances(f.ctx, ids, map[string]string{"pin": ""}); err != nil {
		t.Fatalf("TagInstances with an empty value: %v", err)
	}
	f.expectTags(t, "after setting an empty value", ids, map[string]string{"expiry": "friday", "pin": ""}, nil)
}

// testTagSeveral tags instances in different states in one call.
func testTagSeveral(t *testing.T, f *fixture) {
	ids := append(f.seed(t, 2, running, nil), f.seed(t, 1, stopped, nil)...)
	tags := map[string]string{"env": "pr-42", "owner": "pt"}
	if err := f.Provider.TagInstances(f.ctx, ids, tags); err != nil {
		t.Fatalf("TagInstances(%v): %v", ids, err)
	}
	f.expectTags(t, "after the tag", ids, tags, nil)
	if got := f.findByTags(t, map[string]string{"env": "pr-42"}); !slices.Equal(got, sorted(ids)) {
		t.Errorf("DescribeInstances by the new tag = %v, want %v", got, sorted(ids))
	}
	f.expectStates(t, "after the tag", ids[:2], running)
	f.expectStates(t, "after the tag", ids[2:], stopped)
}

// testUntagInstances removes keys whatever their values, leaves the other
// tags, and takes a key an instance does not have as no error.
func testUntagInstances(t *testing.T, f *fixture) {
	ids := f.seed(t, 2, running, map[string]string{"expiry": "friday", "pin": "alice"})
	if err := f.Provider.UntagInstances(f.ctx, ids, []string{"expiry", "never-set"}); err != nil {
		t.Fatalf("UntagInstances: %v", err)
	}
	f.expectTags(t, "after the untag", ids, map[string]string{"pin": "alice"}, []string{"expiry", "never-set"})
	if got := f.findByTags(t, map[string]string{"expiry": "friday"}); len(got) != 0 {
		t.Errorf("DescribeInstances by the removed tag = %v, want none", got)
	}
	if err := f.Provider.UntagInstances(f.ctx, ids[:1], []string{"expiry"}); err != nil {
		t.Errorf("UntagInstances of a key already removed = %v, want nil", err)
	}
	expectCode(t, "UntagInstances without keys", f.Provider.UntagInstances(f.ctx, ids, nil), switchboard.EINVALID)
	f.expectTags(t, "after the refused untag", ids, map[string]string{"pin": "alice"}, nil)
}

// testTagUnknownID tags and untags an id that names no instance.
func testTagUnknownID(t *testing.T, f *fixture) {
	unknown := []string{f.UnknownID}
	tagErr := f.Provider.TagInstances(f.ctx, unknown, map[string]string{"pin": "pt"})
	untagErr := f.Provider.UntagInstances(f.ctx, unknown, []string{"pin"})
	if f.Differences.TagsIgnoreUnknownIDs {
		if tagErr != nil || untagErr != nil {
			t.Errorf("TagInstances = %v, UntagInstances = %v, want nil: the cloud does not look the ids up (Differences.TagsIgnoreUnknownIDs)", tagErr, untagErr)
		}
		return
	}
	expectCode(t, "TagInstances", tagErr, switchboard.ENOTFOUND)
	expectNames(t, "TagInstances", tagErr, f.UnknownID)
	expectCode(t, "UntagInstances", untagErr, switchboard.ENOTFOUND)
	expectNames(t, "UntagInstances", untagErr, f.UnknownID)
}

func instanceIDs(in []switchboard.Instance) []string {
	out := make([]string, len(in))
	for i, x := range in {
		out[i] = x.ID
	}
	return out
}

func sorted(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func sameSet(a, b []string) bool {
	return slices.Equal(sorted(a), sorted(b))
}

func join(states []switchboard.InstanceState) string {
	s := make([]string, len(states))
	for i, st := range states {
		s[i] = string(st)
	}
	return strings.Join(s, " or ")
}
