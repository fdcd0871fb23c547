package alibaba_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/alibaba"
	"github.com/switchboardhq/switchboard/alibaba/ecstest"
)

// Instance ids in ECS's form.
const (
	web1 = "i-bp1aaaaaaaaaaaaaaaaa"
	web2 = "i-bp1bbbbbbbbbbbbbbbbb"
	db1  = "i-bp1ccccccccccccccccc"
	gone = "i-bp1zzzzzzzzzzzzzzzzz"
)

const (
	keyID     = "LTAI5tTestKeyId0000000000"
	keySecret = "test-secret-0000000000000000"
)

func fleet() []ecstest.Instance {
	return []ecstest.Instance{
		{ID: web1, Name: "web-1", Status: ecstest.StatusRunning, PublicIP: "47.96.0.11", PrivateIP: "172.16.0.11",
			Tags: map[string]string{"env": "prod", "role": "web"}},
		{ID: web2, Name: "web-2", Status: ecstest.StatusStopped,
			Tags: map[string]string{"env": "prod", "role": "web"}},
		{ID: db1, Name: "db-1", Status: ecstest.StatusStopped,
			Tags: map[string]string{"env": "staging", "role": "db"}},
	}
}

// setup starts a fake ECS with opts (the test fleet when opts has none) that
// checks signatures, and a provider pointed at it with the test key.
func setup(t *testing.T, opts ecstest.Options, tune ...func(*alibaba.Options)) (*alibaba.Provider, *ecstest.Server) {
	t.Helper()
	if opts.Instances == nil {
		opts.Instances = fleet()
	}
	opts.AccessKeys = map[string]string{keyID: keySecret}
	srv := ecstest.NewServer(opts)
	t.Cleanup(srv.Close)
	popts := alibaba.Options{
		Region:          ecstest.DefaultRegion,
		Endpoint:        srv.URL,
		AccessKeyID:     keyID,
		AccessKeySecret: keySecret,
		GetenvFunc:      func(string) string { return "" },
	}
	for _, f := range tune {
		f(&popts)
	}
	p, err := alibaba.New(popts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, srv
}

func ids(instances []switchboard.Instance) []string {
	out := make([]string, len(instances))
	for i, in := range instances {
		out[i] = in.ID
	}
	return out
}

func describeOne(t *testing.T, p *alibaba.Provider, id string) switchboard.Instance {
	t.Helper()
	got, err := p.DescribeInstances(context.Background(), switchboard.Filter{IDs: []string{id}})
	if err != nil || len(got) != 1 {
		t.Fatalf("DescribeInstances(%s) = %v, %v; want one instance", id, got, err)
	}
	return got[0]
}

func cloudError(t *testing.T, err error) *switchboard.CloudError {
	t.Helper()
	var ce *switchboard.CloudError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want a *switchboard.CloudError", err, err)
	}
	return ce
}

func TestDescribeInstances(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		filter switchboard.Filter
		want   []string
	}{
		{"every instance", switchboard.Filter{}, []string{web1, web2, db1}},
		{"by id", switchboard.Filter{IDs: []string{db1, web1}}, []string{web1, db1}},
		{"by tag", switchboard.Filter{Tags: map[string]string{"role": "web"}}, []string{web1, web2}},
		{"by two tags", switchboard.Filter{Tags: map[string]string{"role": "web", "env": "prod"}}, []string{web1, web2}},
		{"by id and tag", switchboard.Filter{IDs: []string{web1, db1}, Tags: map[string]string{"env": "staging"}}, []string{db1}},
		{"no match", switchboard.Filter{Tags: map[string]string{"role": "cache"}}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A page of one instance makes every multi-instance answer page.
			p, _ := setup(t, ecstest.Options{PageLimit: 1})
			got, err := p.DescribeInstances(context.Background(), tt.filter)
			if err != nil {
				t.Fatalf("DescribeInstances: %v", err)
			}
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(ids(got), want) {
				t.Errorf("ids = %v, want %v", ids(got), want)
			}
		})
	}
}

func TestDescribeInstancesMapsFields(t *testing.T) {
	t.Parallel()
	p, srv := setup(t, ecstest.Options{EIPs: []string{"47.96.0.99"}})
	got := describeOne(t, p, web1)
	want := switchboard.Instance{ID: web1, Name: "web-1", State: switchboard.StateRunning, Type: "ecs.g7.large",
		PublicIP: "47.96.0.11", PrivateIP: "172.16.0.11"}
	if got.ID != want.ID || got.Name != want.Name || got.State != want.State || got.Type != want.Type ||
		got.PublicIP != want.PublicIP || got.PrivateIP != want.PrivateIP {
		t.Errorf("instance = %+v, want %+v", got, want)
	}
	if got.Tags["env"] != "prod" || got.Tags["role"] != "web" || len(got.Tags) != 2 {
		t.Errorf("tags = %v, want env=prod role=web", got.Tags)
	}
	if got.LaunchTime.IsZero() {
		t.Error("launch time is zero, want the instance's StartTime")
	}

	// The request is ECS's: InstanceIds as a JSON array, paged by NextToken.
	call := srv.CallsTo("DescribeInstances")[0]
	if ids := call.Params.Get("InstanceIds"); ids != `["`+web1+`"]` {
		t.Errorf("InstanceIds = %s, want a JSON array", ids)
	}
	if call.Params.Get("MaxResults") != "100" {
		t.Errorf("MaxResults = %q, want 100", call.Params.Get("MaxResults"))
	}
}

func TestDescribeInstancesSendsTagFilter(t *testing.T) {
	t.Parallel()
	p, srv := setup(t, ecstest.Options{})
	if _, err := p.DescribeInstances(context.Background(), switchboard.Filter{Tags: map[string]string{"role": "db"}}); err != nil {
		t.Fatal(err)
	}
	call := srv.CallsTo("DescribeInstances")[0]
	if call.Params.Get("Tag.1.Key") != "role" || call.Params.Get("Tag.1.Value") != "db" {
		t.Errorf("params = %v, want Tag.1.Key=role Tag.1.Value=db", call.Params)
	}
}

func TestNamesFromInstanceNameThenNameTag(t *testing.T) {
	t.Parallel()
	p, _ := setup(t, ecstest.Options{Instances: []ecstest.Instance{
		{ID: web1, Tags: map[string]string{"Name": "tagged"}},
		{ID: web2, Name: "named", Tags: map[string]string{"Name": "tagged"}},
	}})
	if got := describeOne(t, p, web1).Name; got != "tagged" {
		t.Errorf("name without InstanceName = %q, want the Name tag", got)
	}
	if got := describeOne(t, p, web2).Name; got != "named" {
		t.Errorf("name = %q, want the InstanceName", got)
	}
}

func TestUnknownInstanceIsNotFound(t *testing.T) {
	t.Parallel()
	calls := []struct {
		name string
		call func(p *alibaba.Provider) error
	}{
		{"describe", func(p *alibaba.Provider) error {
			_, err := p.DescribeInstances(context.Background(), switchboard.Filter{IDs: []string{web1, gone}})
			return err
		}},
		{"start", func(p *alibaba.Provider) error {
			_, err := p.StartInstances(context.Background(), []string{web2, gone})
			return err
		}},
		{"stop", func(p *alibaba.Provider) error {
			_, err := p.StopInstances(context.Background(), []string{gone}, switchboard.StopOptions{})
			return err
		}},
		{"reboot", func(p *alibaba.Provider) error { return p.RebootInstances(context.Background(), []string{web1, gone}) }},
		{"terminate", func(p *alibaba.Provider) error {
			_, err := p.TerminateInstances(context.Background(), []string{gone})
			return err
		}},
		{"associate", func(p *alibaba.Provider) error {
			return p.AssociateAddress(context.Background(), gone, "47.96.0.99")
		}},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, srv := setup(t, ecstest.Options{EIPs: []string{"47.96.0.99"}})
			ce := cloudError(t, tt.call(p))
			if ce.Kind != switchboard.ENOTFOUND || ce.Code != "InvalidInstanceId.NotFound" {
				t.Errorf("error = %+v, want ENOTFOUND InvalidInstanceId.NotFound", ce)
			}
			if switchboard.ErrorCode(ce) != switchboard.ENOTFOUND {
				t.Errorf("ErrorCode = %s", switchboard.ErrorCode(ce))
			}
			if in, _ := srv.Instance(web2); in.Status != ecstest.StatusStopped {
				t.Errorf("%s status = %s; a call that failed as a whole changed it", web2, in.Status)
			}
		})
	}
}

func TestStartStoppedThenRunning(t *testing.T) {
	t.Parallel()
	p, srv := setup(t, ecstest.Options{})
	changes, err := p.StartInstances(context.Background(), []string{web2, db1})
	if err != nil {
		t.Fatalf("StartInstances: %v", err)
	}
	want := []switchboard.StateChange{
		{ID: web2, Previous: switchboard.StateStopped, Current: switchboard.StatePending},
		{ID: db1, Previous: switchboard.StateStopped, Current: switchboard.StatePending},
	}
	if !slices.Equal(changes, want) {
		t.Errorf("changes = %v, want %v", changes, want)
	}
	if in, _ := srv.Instance(web2); in.Status != ecstest.StatusStarting {
		t.Errorf("ECS status = %s, want Starting", in.Status)
	}
	if got := describeOne(t, p, web2).State; got != switchboard.StateRunning {
		t.Errorf("state on the next describe = %s, want running", got)
	}
	start := srv.CallsTo("StartInstances")
	if len(start) != 1 || start[0].Params.Get("BatchOptimization") != "SuccessFirst" ||
		start[0].Params.Get("InstanceId.1") != web2 || start[0].Params.Get("InstanceId.2") != db1 {
		t.Errorf("StartInstances calls = %v, want one SuccessFirst batch with InstanceId.1 and .2", start)
	}
}

func TestStartingIsPendingWhileItLasts(t *testing.T) {
	t.Parallel()
	p, _ := setup(t, ecstest.Options{TransitionDescribes: 1})
	if _, err := p.StartInstances(context.Background(), []string{web2}); err != nil {
		t.Fatal(err)
	}
	if got := describeOne(t, p, web2).State; got != switchboard.StatePending {
		t.Errorf("state = %s, want pending while ECS says Starting", got)
	}
	if got := describeOne(t, p, web2).State; got != switchboard.StateRunning {
		t.Errorf("state = %s, want running", got)
	}
}

func TestStartRunningChangesNothing(t *testing.T) {
	t.Parallel()
	p, srv := setup(t, ecstest.Options{})
	changes, err := p.StartInstances(context.Background(), []string{web1})
	if err != nil {
		t.Fatalf("StartInstances: %v", err)
	}
	want := []switchboard.StateChange{{ID: web1, Previous: switchboard.StateRunning, Current: switchboard.StateRunning}}
	if !slices.Equal(changes, want) {
		t.Errorf("changes = %v, want %v", changes, want)
	}
	if n := len(srv.CallsTo("StartInstances")); n != 0 {
		t.Errorf("StartInstances was called %d times for a running instance, want 0", n)
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      switchboard.StopOptions
		wantForce string
	}{
		{"graceful", switchboard.StopOptions{}, "false"},
		{"forced", switchboard.StopOptions{Force: true}, "true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, srv := setup(t, ecstest.Options{})
			changes, err := p.StopInstances(context.Background(), []string{web1, web2}, tt.opts)
			if err != nil {
				t.Fatalf("StopInstances: %v", err)
			}
			want := []switchboard.StateChange{
				{ID: web1, Previous: switchboard.StateRunning, Current: switchboard.StateStopping},
				{ID: web2, Previous: switchboard.StateStopped, Current: switchboard.StateStopped},
			}
			if !slices.Equal(changes, want) {
				t.Errorf("changes = %v, want %v", changes, want)
			}
			call := srv.CallsTo("StopInstances")[0]
			if call.Params.Get("ForceStop") != tt.wantForce || call.Params.Get("StoppedMode") != "KeepCharging" {
				t.Errorf("ForceStop=%q StoppedMode=%q, want %s and KeepCharging",
					call.Params.Get("ForceStop"), call.Params.Get("StoppedMode"), tt.wantForce)
			}
			if call.Params.Has("InstanceId.2") {
				t.Errorf("the stopped instance was sent to StopInstances: %v", call.Params)
			}
			got := describeOne(t, p, web1)
			if got.State != switchboard.StateStopped || got.PublicIP != "47.96.0.11" {
				t.Errorf("after the stop: %s at %q, want stopped keeping its public IP", got.State, got.PublicIP)
			}
		})
	}
}

func TestStopRefusesHibernate(t *testing.T) {
	t.Parallel()
	p, _ := setup(t, ecstest.Options{})
	_, err := p.StopInstances(context.Background(), []string{web1}, switchboard.StopOptions{Hibernate: true})
	if switchboard.ErrorCode(err) != switchboard.EINVALID {
		t.Errorf("err = %v, want EINVALID", err)
	}
}

func TestReboot(t *testing.T) {
	t.Parallel()
	p, srv := setup(t, ecstest.Options{})
	if err := p.RebootInstances(context.Background(), []string{web1}); err != nil {
		t.Fatalf("RebootInstances: %v", err)
	}
	if in, _ := srv.Instance(web1); in.Reboots != 1 || in.Status != ecstest.StatusRunning {
		t.Errorf("after reboot: %d reboots, %s; want 1, Running", in.Reboots, in.Status)
	}

	// A stopped instance cannot be rebooted: the only instance asked for
	// fails with ECS's error itself.
	ce := cloudError(t, p.RebootInstances(context.Background(), []string{web2}))
	if ce.Kind != switchboard.ECONFLICT || ce.Code != "IncorrectInstanceStatus" || !slices.Equal(ce.IDs, []string{web2}) {
		t.Errorf("error = %+v, want ECONFLICT IncorrectInstanceStatus for %s", ce, web2)
	}
}

func TestPartialFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ids  []string
		act  func(p *alibaba.Provider, ids []string) ([]switchboard.StateChange, error)
		want switchboard.InstanceState // the state of the instances that worked, on the next look
	}{
		{"start", []string{web2, db1}, func(p *alibaba.Provider, ids []string) ([]switchboard.StateChange, error) {
			return p.StartInstances(context.Background(), ids)
		}, switchboard.StateRunning},
		{"stop", []string{web1, db1}, func(p *alibaba.Provider, ids []string) ([]switchboard.StateChange, error) {
			return p.StopInstances(context.Background(), ids, switchboard.StopOptions{})
		}, switchboard.StateStopped},
		{"reboot", []string{web1, db1}, func(p *alibaba.Provider, ids []string) ([]switchboard.StateChange, error) {
			return nil, p.RebootInstances(context.Background(), ids)
		}, switchboard.StateRunning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			instances := fleet()
			instances[2].Status = ecstest.StatusRunning // db1 runs too
			if tt.name == "start" {
				instances[2].Status = ecstest.StatusStopped
			}
			p, srv := setup(t, ecstest.Options{Instances: instances})
			srv.RefuseInstance(db1, "IncorrectInstanceStatus")

			changes, err := tt.act(p, tt.ids)
			var partial *switchboard.PartialError
			if !errors.As(err, &partial) {
				t.Fatalf("err = %v (%T), want a *switchboard.PartialError", err, err)
			}
			if len(partial.Failed) != 1 {
				t.Fatalf("failed = %v, want only %s", partial.Failed, db1)
			}
			ce := cloudError(t, partial.Failed[db1])
			if ce.Code != "IncorrectInstanceStatus" || ce.Kind != switchboard.ECONFLICT || !slices.Equal(ce.IDs, []string{db1}) {
				t.Errorf("failure of %s = %+v, want IncorrectInstanceStatus, ECONFLICT", db1, ce)
			}
			if switchboard.ErrorCode(err) != switchboard.ECONFLICT {
				t.Errorf("ErrorCode = %s, want conflict", switchboard.ErrorCode(err))
			}
			worked := tt.ids[0]
			if tt.name != "reboot" && (len(changes) != 1 || changes[0].ID != worked) {
				t.Errorf("changes = %v, want only %s", changes, worked)
			}
			if got := describeOne(t, p, worked).State; got != tt.want {
				t.Errorf("%s = %s, want %s: the others must change", worked, got, tt.want)
			}
		})
	}
}

func TestTerminate(t *testing.T) {
	t.Parallel()
	t.Run("stopped instances are deleted", func(t *testing.T) {
		t.Parallel()
		p, srv := setup(t, ecstest.Options{})
		changes, err := p.TerminateInstances(context.Background(), []string{web2, db1})
		if err != nil {
			t.Fatalf("TerminateInstances: %v", err)
		}
		want := []switchboard.StateChange{
			{ID: web2, Previous: switchboard.StateStopped, Current: switchboard.StateTerminated},
			{ID: db1, Previous: switchboard.StateStopped, Current: switchboard.StateTerminated},
		}
		if !slices.Equal(changes, want) {
			t.Errorf("changes = %v, want %v", changes, want)
		}
		if _, ok := srv.Instance(web2); ok {
			t.Error("the instance is still in the account")
		}
		if call := srv.CallsTo("DeleteInstances")[0]; call.Params.Get("Force") != "false" {
			t.Errorf("Force = %q for stopped instances, want false", call.Params.Get("Force"))
		}
	})
	t.Run("running instances are refused by default", func(t *testing.T) {
		t.Parallel()
		p, srv := setup(t, ecstest.Options{})
		changes, err := p.TerminateInstances(context.Background(), []string{web1, web2})
		var partial *switchboard.PartialError
		if !errors.As(err, &partial) || len(partial.Failed) != 1 || partial.Failed[web1] == nil {
			t.Fatalf("err = %v, want a PartialError naming %s", err, web1)
		}
		if switchboard.ErrorCode(partial.Failed[web1]) != switchboard.ECONFLICT ||
			!strings.Contains(switchboard.ErrorMessage(partial.Failed[web1]), "Stop it first") {
			t.Errorf("failure = %v, want ECONFLICT asking for a stop", partial.Failed[web1])
		}
		if len(changes) != 1 || changes[0].ID != web2 {
			t.Errorf("changes = %v, want %s deleted", changes, web2)
		}
		if _, ok := srv.Instance(web1); !ok {
			t.Error("the running instance was deleted")
		}
	})
	t.Run("ForceDelete releases running instances", func(t *testing.T) {
		t.Parallel()
		p, srv := setup(t, ecstest.Options{}, func(o *alibaba.Options) { o.ForceDelete = true })
		changes, err := p.TerminateInstances(context.Background(), []string{web1})
		if err != nil {
			t.Fatalf("TerminateInstances: %v", err)
		}
		if len(changes) != 1 || changes[0].Previous != switchboard.StateRunning || changes[0].Current != switchboard.StateTerminated {
			t.Errorf("changes = %v", changes)
		}
		if call := srv.CallsTo("DeleteInstances")[0]; call.Params.Get("Force") != "true" {
			t.Errorf("Force = %q, want true", call.Params.Get("Force"))
		}
		if _, err := p.DescribeInstances(context.Background(), switchboard.Filter{IDs: []string{web1}}); switchboard.ErrorCode(err) != switchboard.ENOTFOUND {
			t.Errorf("describe after delete: %v, want ENOTFOUND", err)
		}
	})
}

func TestAssociateAddress(t *testing.T) {
	t.Parallel()
	const eip = "47.96.0.99"
	p, srv := setup(t, ecstest.Options{EIPs: []string{eip, "47.96.0.98"}})
	if err := p.AssociateAddress(context.Background(), web1, eip); err != nil {
		t.Fatalf("AssociateAddress: %v", err)
	}
	if got := describeOne(t, p, web1).PublicIP; got != eip {
		t.Errorf("public IP = %s, want the Elastic IP %s", got, eip)
	}
	allocation, _ := srv.AllocationID(eip)
	call := srv.CallsTo("AssociateEipAddress")[0]
	if call.Params.Get("AllocationId") != allocation || call.Params.Get("InstanceId") != web1 {
		t.Errorf("AssociateEipAddress params = %v, want AllocationId %s", call.Params, allocation)
	}
	if srv.CallsTo("DescribeEipAddresses")[0].Params.Get("EipAddress") != eip {
		t.Error("the EIP was not looked up by address")
	}

	// Again: already bound, nothing to do.
	if err := p.AssociateAddress(context.Background(), web1, eip); err != nil {
		t.Errorf("second AssociateAddress: %v", err)
	}
	if n := len(srv.CallsTo("AssociateEipAddress")); n != 1 {
		t.Errorf("AssociateEipAddress calls = %d, want 1", n)
	}

	// Bound to another instance: ECS does not move it.
	ce := cloudError(t, p.AssociateAddress(context.Background(), web2, eip))
	if ce.Code != "IncorrectEipStatus" || ce.Kind != switchboard.ECONFLICT {
		t.Errorf("error = %+v, want IncorrectEipStatus, ECONFLICT", ce)
	}

	// An address the account does not hold.
	ce = cloudError(t, p.AssociateAddress(context.Background(), web1, "203.0.113.7"))
	if ce.Kind != switchboard.ENOTFOUND || !strings.Contains(ce.Message, "203.0.113.7") {
		t.Errorf("error = %+v, want ENOTFOUND naming the address", ce)
	}
}

func TestRunInstances(t *testing.T) {
	t.Parallel()
	p, srv := setup(t, ecstest.Options{Instances: []ecstest.Instance{}})
	spec := switchboard.LaunchSpec{
		ImageID:        "m-bp1imageimageimage00",
		Type:           "ecs.g7.large",
		Count:          2,
		SubnetID:       "vsw-bp1subnet",
		SecurityGroups: []string{"sg-bp1one", "sg-bp1two"},
		KeyName:        "deploy",
		UserData:       "#cloud-config\nruncmd: [echo hi]\n",
		Tags:           map[string]string{"Name": "feature-login", "branch": "feature/login"},
		ClientToken:    "run-42-step-3",
	}
	first, err := p.RunInstances(context.Background(), spec)
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	if len(first) != 2 {
		t.Fatalf("launched %d instances, want 2", len(first))
	}
	for _, in := range first {
		if in.Name != "feature-login" || in.Type != spec.Type || in.Tags["branch"] != "feature/login" {
			t.Errorf("instance = %+v", in)
		}
	}
	again, err := p.RunInstances(context.Background(), spec)
	if err != nil {
		t.Fatalf("RunInstances again: %v", err)
	}
	if !slices.Equal(ids(again), ids(first)) {
		t.Errorf("the same ClientToken launched %v, want the first call's %v", ids(again), ids(first))
	}
	if n := len(srv.Instances()); n != 2 {
		t.Errorf("the account holds %d instances, want 2", n)
	}

	d, _ := srv.Instance(first[0].ID)
	if d.UserData != spec.UserData || d.VSwitchID != spec.SubnetID || d.KeyPairName != "deploy" ||
		!slices.Equal(d.SecurityGroupIDs, spec.SecurityGroups) || d.ClientToken != spec.ClientToken || d.ImageID != spec.ImageID {
		t.Errorf("launched = %+v, want the spec", d)
	}
	call := srv.CallsTo("RunInstances")[0]
	if call.Params.Get("Amount") != "2" || call.Params.Get("ClientToken") != spec.ClientToken {
		t.Errorf("Amount=%q ClientToken=%q", call.Params.Get("Amount"), call.Params.Get("ClientToken"))
	}

	// The same token with another spec is refused, as ECS does.
	spec.Type = "ecs.g7.xlarge"
	_, err = p.RunInstances(context.Background(), spec)
	if ce := cloudError(t, err); ce.Code != "IdempotentParameterMismatch" || ce.Kind != switchboard.EINVALID {
		t.Errorf("error = %+v, want IdempotentParameterMismatch, EINVALID", ce)
	}
}

func TestRunInstancesLongClientTokenStaysIdempotent(t *testing.T) {
	t.Parallel()
	p, srv := setup(t, ecstest.Options{Instances: []ecstest.Instance{}})
	spec := switchboard.LaunchSpec{ImageID: "m-bp1image", Type: "ecs.g7.large", ClientToken: strings.Repeat("run-0123456789-", 8)}
	for range 2 {
		if _, err := p.RunInstances(context.Background(), spec); err != nil {
			t.Fatalf("RunInstances: %v", err)
		}
	}
	if n := len(srv.Instances()); n != 1 {
		t.Errorf("instances = %d, want 1", n)
	}
	if token := srv.CallsTo("RunInstances")[0].Params.Get("ClientToken"); len(token) != 64 {
		t.Errorf("ClientToken %q is %d characters, want 64", token, len(token))
	}
}

func TestRunInstancesNeedsImageAndType(t *testing.T) {
	t.Parallel()
	p, srv := setup(t, ecstest.Options{})
	for _, spec := range []switchboard.LaunchSpec{{Type: "ecs.g7.large"}, {ImageID: "m-bp1image"}, {ImageID: "m", Type: "t", Count: 101}} {
		if _, err := p.RunInstances(context.Background(), spec); switchboard.ErrorCode(err) != switchboard.EINVALID {
			t.Errorf("RunInstances(%+v) = %v, want EINVALID", spec, err)
		}
	}
	if n := len(srv.CallsTo("RunInstances")); n != 0 {
		t.Errorf("RunInstances reached ECS %d times", n)
	}
}

func TestDryRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		action string
		id     string
		ecs    string // the ECS action the dry run stands for
		deny   bool
		want   string // error code, "" for allowed
	}{
		{switchboard.ActionStart, web2, "StartInstances", false, ""},
		{switchboard.ActionStop, web1, "StopInstances", false, ""},
		{switchboard.ActionReboot, web1, "RebootInstances", false, ""},
		{"terminate", web2, "DeleteInstances", false, ""},
		{switchboard.ActionStart, web2, "StartInstances", true, switchboard.EFORBIDDEN},
		{switchboard.ActionStop, web1, "StopInstances", true, switchboard.EFORBIDDEN},
		{"terminate", web2, "DeleteInstances", true, switchboard.EFORBIDDEN},
		{switchboard.ActionStart, web1, "StartInstances", false, switchboard.ECONFLICT}, // already running
		{switchboard.ActionStart, gone, "StartInstances", false, switchboard.ENOTFOUND},
		{"hibernate", web1, "", false, switchboard.EINVALID},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s deny=%v", tt.action, tt.id, tt.deny), func(t *testing.T) {
			t.Parallel()
			p, srv := setup(t, ecstest.Options{})
			if tt.deny {
				srv.Deny(tt.ecs)
			}
			err := p.DryRun(context.Background(), tt.action, []string{tt.id})
			if got := switchboard.ErrorCode(err); got != tt.want {
				t.Fatalf("DryRun = %v (%s), want %q", err, got, tt.want)
			}
			if tt.want == switchboard.EFORBIDDEN && cloudError(t, err).Code != "Forbidden.RAM" {
				t.Errorf("code = %s, want Forbidden.RAM", cloudError(t, err).Code)
			}
			if tt.ecs == "" {
				return
			}
			call := srv.CallsTo(tt.ecs)
			if len(call) != 1 || call[0].Params.Get("DryRun") != "true" {
				t.Fatalf("%s calls = %v, want one with DryRun=true", tt.ecs, call)
			}
			if in, _ := srv.Instance(tt.id); tt.id != gone && in.Status != fleetStatus(tt.id) {
				t.Errorf("the dry run changed %s to %s", tt.id, in.Status)
			}
		})
	}
}

func fleetStatus(id string) string {
	for _, in := range fleet() {
		if in.ID == id {
			return in.Status
		}
	}
	return ""
}

func TestThrottling(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		call func(p *alibaba.Provider) error
	}{
		{"describe", func(p *alibaba.Provider) error {
			_, err := p.DescribeInstances(context.Background(), switchboard.Filter{})
			return err
		}},
		{"start", func(p *alibaba.Provider) error {
			_, err := p.StartInstances(context.Background(), []string{web2, db1})
			return err
		}},
		{"reboot", func(p *alibaba.Provider) error { return p.RebootInstances(context.Background(), []string{web1}) }},
		{"run", func(p *alibaba.Provider) error {
			_, err := p.RunInstances(context.Background(), switchboard.LaunchSpec{ImageID: "m-1", Type: "ecs.g7.large"})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, srv := setup(t, ecstest.Options{})
			srv.Throttle("", 1)
			ce := cloudError(t, tt.call(p))
			if ce.Kind != switchboard.ETHROTTLED || ce.Code != "Throttling.User" {
				t.Errorf("error = %+v, want ETHROTTLED Throttling.User", ce)
			}
			if switchboard.ErrorCode(ce) != switchboard.ETHROTTLED {
				t.Errorf("ErrorCode = %s", switchboard.ErrorCode(ce))
			}
			// The SDK does not retry on its own: one call, one answer.
			if n := len(srv.Calls()); n != 1 {
				t.Errorf("ECS saw %d calls, want 1 (no SDK retries)", n)
			}
			// The next call goes through.
			if err := tt.call(p); err != nil {
				t.Errorf("after the throttle: %v", err)
			}
		})
	}
}

func TestThrottledBatchIsThrottledNotPartial(t *testing.T) {
	t.Parallel()
	p, srv := setup(t, ecstest.Options{})
	srv.Throttle("StartInstances", 1)
	_, err := p.StartInstances(context.Background(), []string{web2, db1})
	if ce := cloudError(t, err); ce.Kind != switchboard.ETHROTTLED || !slices.Equal(ce.IDs, []string{web2, db1}) {
		t.Errorf("error = %+v, want ETHROTTLED naming both ids", ce)
	}
}

// A throttled call that changed nothing is returned as the throttle, not as
// per-instance failures, so the layer above retries the whole call; start and
// terminate are safe to repeat because instances already done are reported
// unchanged.
func TestThrottledCallWithUnchangedInstancesIsThrottled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		action string
		call   func(p *alibaba.Provider) ([]switchboard.StateChange, error)
	}{
		{"start a running and a stopped instance", "StartInstances", func(p *alibaba.Provider) ([]switchboard.StateChange, error) {
			return p.StartInstances(context.Background(), []string{web1, web2})
		}},
		{"terminate a running and a stopped instance", "DeleteInstances", func(p *alibaba.Provider) ([]switchboard.StateChange, error) {
			return p.TerminateInstances(context.Background(), []string{web1, web2})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, srv := setup(t, ecstest.Options{})
			srv.Throttle(tt.action, 1)
			_, err := tt.call(p)
			var partial *switchboard.PartialError
			if errors.As(err, &partial) || switchboard.ErrorCode(err) != switchboard.ETHROTTLED {
				t.Fatalf("err = %v, want the throttle itself", err)
			}
			if _, err := tt.call(p); err != nil && !errors.As(err, &partial) {
				t.Errorf("retry: %v", err)
			}
			if in, _ := srv.Instance(web2); tt.action == "StartInstances" && in.Status != ecstest.StatusStarting {
				t.Errorf("%s is %s after the retry, want Starting", web2, in.Status)
			}
		})
	}
}

func TestErrorKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		code   string
		want   string
	}{
		{http.StatusBadRequest, "Throttling.User", switchboard.ETHROTTLED},
		{http.StatusServiceUnavailable, "Throttling", switchboard.ETHROTTLED},
		{http.StatusBadRequest, "Throttling.Api", switchboard.ETHROTTLED},
		{http.StatusServiceUnavailable, "ServiceUnavailable", switchboard.EUNAVAILABLE},
		{http.StatusInternalServerError, "InternalError", switchboard.EUNAVAILABLE},
		{http.StatusBadGateway, "SomethingNew", switchboard.EUNAVAILABLE},
		{http.StatusForbidden, "IncorrectInstanceStatus", switchboard.ECONFLICT},
		{http.StatusForbidden, "InstanceLockedForSecurity", switchboard.ECONFLICT},
		{http.StatusNotFound, "InvalidInstanceId.NotFound", switchboard.ENOTFOUND},
		{http.StatusForbidden, "Forbidden.RAM", switchboard.EFORBIDDEN},
		{http.StatusForbidden, "Forbidden", switchboard.EFORBIDDEN},
		{http.StatusBadRequest, "NoPermission", switchboard.EFORBIDDEN},
		{http.StatusNotFound, "InvalidAccessKeyId.NotFound", switchboard.EFORBIDDEN},
		{http.StatusBadRequest, "SignatureDoesNotMatch", switchboard.EFORBIDDEN},
		{http.StatusBadRequest, "InvalidParameter", switchboard.EINVALID},
		{http.StatusBadRequest, "InvalidParameter.InstanceIds", switchboard.EINVALID},
		{http.StatusBadRequest, "MissingParameter", switchboard.EINVALID},
		{http.StatusBadRequest, "InvalidRegionId.NotFound", switchboard.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			p, srv := setup(t, ecstest.Options{})
			srv.FailNext("", ecstest.Fault{Status: tt.status, Code: tt.code, Message: "message of " + tt.code})
			_, err := p.DescribeInstances(context.Background(), switchboard.Filter{})
			ce := cloudError(t, err)
			if ce.Kind != tt.want || ce.Code != tt.code || ce.Message != "message of "+tt.code {
				t.Errorf("error = %+v, want Kind %s with ECS's code and message", ce, tt.want)
			}
		})
	}
}

func TestUnreachableIsUnavailable(t *testing.T) {
	t.Parallel()
	srv := ecstest.NewServer(ecstest.Options{})
	srv.Close()
	p, err := alibaba.New(alibaba.Options{Region: ecstest.DefaultRegion, Endpoint: srv.URL, AccessKeyID: keyID, AccessKeySecret: keySecret})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.DescribeInstances(context.Background(), switchboard.Filter{})
	if switchboard.ErrorCode(err) != switchboard.EUNAVAILABLE {
		t.Errorf("err = %v (%s), want EUNAVAILABLE", err, switchboard.ErrorCode(err))
	}
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	p, srv := setup(t, ecstest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.StartInstances(ctx, []string{web2}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("ECS saw %d calls after the context ended", n)
	}
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	tests := []struct {
		name       string
		opts       alibaba.Options
		wantSource string
		wantErr    []string // words the error must contain
		callsAs    string   // the access key id ECS should see
	}{
		{name: "options", opts: alibaba.Options{AccessKeyID: keyID, AccessKeySecret: keySecret,
			GetenvFunc: env(map[string]string{alibaba.EnvAccessKeyID: "other", alibaba.EnvAccessKeySecret: "other"})},
			wantSource: "options", callsAs: keyID},
		{name: "environment", opts: alibaba.Options{RAMRole: "switchboard",
			GetenvFunc: env(map[string]string{alibaba.EnvAccessKeyID: keyID, alibaba.EnvAccessKeySecret: keySecret})},
			wantSource: "environment", callsAs: keyID},
		{name: "ram role", opts: alibaba.Options{RAMRole: "switchboard", GetenvFunc: env(nil)},
			wantSource: "ram-role:switchboard"},
		{name: "assume role", opts: alibaba.Options{AccessKeyID: keyID, AccessKeySecret: keySecret,
			RoleARN: "acs:ram::1234567890123456:role/switchboard", GetenvFunc: env(nil)},
			wantSource: "options+assume-role:acs:ram::1234567890123456:role/switchboard"},
		{name: "assume role without a base key", opts: alibaba.Options{RoleARN: "acs:ram::1:role/x", GetenvFunc: env(nil)},
			wantErr: []string{"access_key_id"}},
		{name: "not a role ARN", opts: alibaba.Options{AccessKeyID: keyID, AccessKeySecret: keySecret,
			RoleARN: "arn:aws:iam::1:role/x", GetenvFunc: env(nil)},
			wantErr: []string{"acs:ram::"}},
		{name: "nothing", opts: alibaba.Options{GetenvFunc: env(nil)},
			wantErr: []string{"access_key_id", "access_key_secret", alibaba.EnvAccessKeyID, alibaba.EnvAccessKeySecret, "ram_role"}},
		{name: "half a key", opts: alibaba.Options{AccessKeyID: keyID, GetenvFunc: env(nil)},
			wantErr: []string{"access_key_id", "access_key_secret"}},
		{name: "half a key in the environment", opts: alibaba.Options{GetenvFunc: env(map[string]string{alibaba.EnvAccessKeyID: keyID})},
			wantErr: []string{alibaba.EnvAccessKeySecret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := ecstest.NewServer(ecstest.Options{AccessKeys: map[string]string{keyID: keySecret}, Instances: fleet()})
			t.Cleanup(srv.Close)
			opts := tt.opts
			opts.Region, opts.Endpoint = ecstest.DefaultRegion, srv.URL
			p, err := alibaba.New(opts)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("New succeeded, want an error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %s", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if got := p.CredentialSource(); got != tt.wantSource {
				t.Errorf("CredentialSource = %q, want %q", got, tt.wantSource)
			}
			if tt.callsAs == "" {
				return // role credentials come from instance metadata or STS, not here
			}
			if _, err := p.DescribeInstances(context.Background(), switchboard.Filter{}); err != nil {
				t.Fatalf("a signed call failed: %v", err)
			}
			if got := srv.Calls()[0].Params.Get("AccessKeyId"); got != tt.callsAs {
				t.Errorf("AccessKeyId = %q, want %q", got, tt.callsAs)
			}
		})
	}
}

func TestWrongSecretIsForbidden(t *testing.T) {
	t.Parallel()
	p, _ := setup(t, ecstest.Options{}, func(o *alibaba.Options) { o.AccessKeySecret = "wrong" })
	_, err := p.DescribeInstances(context.Background(), switchboard.Filter{})
	if ce := cloudError(t, err); ce.Code != "SignatureDoesNotMatch" || ce.Kind != switchboard.EFORBIDDEN {
		t.Errorf("error = %+v, want SignatureDoesNotMatch, EFORBIDDEN", ce)
	}
}

func TestNewChecksRegionAndEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts alibaba.Options
		ok   bool
	}{
		{"region and key", alibaba.Options{Region: "cn-hangzhou"}, true},
		{"host endpoint", alibaba.Options{Region: "cn-hangzhou", Endpoint: "ecs-vpc.cn-hangzhou.aliyuncs.com"}, true},
		{"http endpoint", alibaba.Options{Region: "cn-hangzhou", Endpoint: "http://127.0.0.1:8080"}, true},
		{"no region", alibaba.Options{}, false},
		{"bad region", alibaba.Options{Region: "cn hangzhou"}, false},
		{"endpoint with a path", alibaba.Options{Region: "cn-hangzhou", Endpoint: "https://ecs.aliyuncs.com/v1"}, false},
		{"ftp endpoint", alibaba.Options{Region: "cn-hangzhou", Endpoint: "ftp://ecs.aliyuncs.com"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.AccessKeyID, tt.opts.AccessKeySecret = keyID, keySecret
			_, err := alibaba.New(tt.opts)
			if (err == nil) != tt.ok {
				t.Errorf("New = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestWrongRegionIsInvalid(t *testing.T) {
	t.Parallel()
	p, _ := setup(t, ecstest.Options{}, func(o *alibaba.Options) { o.Region = "cn-shanghai" })
	_, err := p.DescribeInstances(context.Background(), switchboard.Filter{})
	if switchboard.ErrorCode(err) != switchboard.EINVALID {
		t.Errorf("err = %v, want EINVALID", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	p, _ := setup(t, ecstest.Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				_, err = p.DescribeInstances(context.Background(), switchboard.Filter{Tags: map[string]string{"role": "web"}})
			} else {
				err = p.RebootInstances(context.Background(), []string{web1})
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestState(t *testing.T) {
	t.Parallel()
	tests := map[string]switchboard.InstanceState{
		"Pending":  switchboard.StatePending,
		"Starting": switchboard.StatePending,
		"Running":  switchboard.StateRunning,
		"Stopping": switchboard.StateStopping,
		"Stopped":  switchboard.StateStopped,
		"Expired":  "expired",
	}
	for status, want := range tests {
		if got := alibaba.State(status); got != want {
			t.Errorf("State(%s) = %s, want %s", status, got, want)
		}
	}
}

// roundTripFunc answers requests without a network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestDefaultEndpointIsHTTPS(t *testing.T) {
	t.Parallel()
	var seen []string
	var mu sync.Mutex
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		seen = append(seen, r.URL.Scheme+"://"+r.URL.Host)
		mu.Unlock()
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"RequestId":"1","TotalCount":0,"NextToken":"","Instances":{"Instance":[]}}`)), Request: r}, nil
	})}
	p, err := alibaba.New(alibaba.Options{Region: "cn-hangzhou", AccessKeyID: keyID, AccessKeySecret: keySecret, HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DescribeInstances(context.Background(), switchboard.Filter{}); err != nil {
		t.Fatalf("DescribeInstances: %v", err)
	}
	if len(seen) != 1 || !strings.HasPrefix(seen[0], "https://") || !strings.HasSuffix(seen[0], ".aliyuncs.com") {
		t.Errorf("requests went to %v, want ECS's HTTPS endpoint", seen)
	}
	t.Logf("endpoint: %v", seen)
}
