package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/sim"
)

// memory is an Inventory kept in a map.
type memory struct {
	mu      sync.Mutex
	known   map[string]switchboard.Instance
	settled map[string]bool
}

func (m *memory) Remember(cloud string, insts []switchboard.Instance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, in := range insts {
		m.known[cloud+"/"+in.ID] = in
	}
}

func (m *memory) Unsettled(_ context.Context, cloud string) ([]switchboard.Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []switchboard.Instance
	for key, in := range m.known {
		if strings.HasPrefix(key, cloud+"/") && !m.settled[key] {
			out = append(out, in)
		}
	}
	return out, nil
}

func (m *memory) Settle(_ context.Context, cloud, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.settled[cloud+"/"+id] = true
	return nil
}

func (m *memory) Recall(_ context.Context, cloud, id string) (switchboard.Instance, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in, ok := m.known[cloud+"/"+id]
	return in, ok, nil
}

// recall completes what the cloud says of a terminated instance with what
// was seen of it before; an instance nobody knows is not a failure.
func TestRecall(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleet(), func(o *sim.Options) { o.ShuttingDownDuration = sim.Instant })
	inv := &memory{known: map[string]switchboard.Instance{}, settled: map[string]bool{}}
	h.runner.Inventory = inv
	ctx := context.Background()
	before, err := h.cloud.DescribeInstances(ctx, switchboard.Filter{IDs: []string{idWeb1}})
	if err != nil {
		t.Fatal(err)
	}
	inv.Remember("main", before)
	if _, err := h.cloud.TerminateInstances(ctx, []string{idWeb1}); err != nil {
		t.Fatal(err)
	}
	outputs := func(id string) map[string]any {
		t.Helper()
		run := &switchboard.Run{ID: "r-recall-" + id, Workflow: "gone", Cloud: "main",
			Plan: []switchboard.Step{{Kind: "recall", ID: "inst", With: json.RawMessage(`{"instance":"` + id + `"}`)}}}
		h.finish(run)
		if run.State != switchboard.RunSucceeded {
			t.Fatalf("run %s: %s", run.State, run.Error)
		}
		var out map[string]any
		if err := json.Unmarshal(run.Vars["inst"], &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := outputs(idWeb1)
	if got["state"] != "terminated" || got["name"] != "web-1" || got["public_ip"] != web1IP || got["private_ip"] == "" || got["known"] != true {
		t.Errorf("recall of a terminated instance = %v", got)
	}
	if got := outputs("i-0aaaaaaaaaaaaaaaa"); got["known"] != false || got["state"] != "gone" {
		t.Errorf("recall of an unknown instance = %v", got)
	}
}

// emitted records the events steps emit.
type emitted struct {
	mu     sync.Mutex
	events []switchboard.Event
}

func (e *emitted) HandleEvent(_ context.Context, ev switchboard.Event) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, ev)
	return []string{"r-" + ev.DeliveryID}, nil
}

// The sweep hands each instance that ended unnoticed (terminated, or gone
// from the cloud) to the cleanup workflow once, and leaves live ones alone.
func TestSweepDeparted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleet(), func(o *sim.Options) { o.ShuttingDownDuration = sim.Instant })
	inv := &memory{known: map[string]switchboard.Instance{}, settled: map[string]bool{}}
	events := &emitted{}
	h.runner.Inventory, h.runner.Events = inv, events
	ctx := context.Background()
	all, err := h.cloud.DescribeInstances(ctx, switchboard.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	const vanished = "i-0aaaaaaaaaaaaaaaa" // never in this cloud any more
	inv.Remember("main", append(all, switchboard.Instance{ID: vanished, Name: "old-1"}))
	if _, err := h.cloud.TerminateInstances(ctx, []string{idTools}); err != nil {
		t.Fatal(err)
	}
	sweep := func(n int) []string {
		run := &switchboard.Run{ID: fmt.Sprintf("r-sweep-%d", n), Workflow: "sweep", Cloud: "main", Request: switchboard.Request{ChannelID: "C0OPS"},
			Plan: []switchboard.Step{{Kind: "sweep_departed", With: json.RawMessage(`{"workflow":"decommission"}`)}}}
		got := texts(h.finish(run))
		if run.State != switchboard.RunSucceeded {
			t.Fatalf("sweep %d: %s %s", n, run.State, run.Error)
		}
		return got
	}
	got := sweep(1)
	if len(got) != 1 || !strings.Contains(got[0], "Found 2 instance(s) that ended unnoticed") || !strings.Contains(got[0], "old-1") {
		t.Errorf("sweep said %q", got)
	}
	var handed []string
	for _, ev := range events.events {
		if ev.Workflow != "decommission" || ev.Kind != "EC2 Instance State-change Notification" {
			t.Errorf("event %+v", ev)
		}
		handed = append(handed, ev.DeliveryID)
	}
	slices.Sort(handed)
	if want := []string{"sweep/main/" + idTools, "sweep/main/" + vanished}; !slices.Equal(handed, want) {
		t.Errorf("handed %v, want %v", handed, want)
	}
	if got := sweep(2); len(got) != 0 || len(events.events) != 2 {
		t.Errorf("a second sweep said %q and handed %d in all", got, len(events.events))
	}
}

// An instance's Name tag and tags are anyone's with CreateTags: in an
// answer they are plain text, and cannot ping a channel or hide a link.
func TestInstanceNamesAreEscaped(t *testing.T) {
	t.Parallel()
	f := fleet()
	f[0].Name = "<!channel> & <https://evil.example|tools>"
	f[0].Tags = map[string]string{"note": "<@U0BOSS>"}
	h := newHarness(t, f, nil)
	got := texts(h.finish(h.run("list")))
	want := "&lt;!channel&gt; &amp; &lt;https://evil.example|tools&gt; (" + idTools + ")"
	if len(got) != 1 || !strings.Contains(got[0], want) || !strings.Contains(got[0], "note=&lt;@U0BOSS&gt;") || strings.Contains(got[0], "<!channel>") {
		t.Errorf("list said %q, want the name and tag escaped", got)
	}
}

// The sweep also asks every step type that declares Holdings (here one
// integration standing for Route53, Chef and Consul): an instance the
// inventory never saw is found by the id an entry carries, the entries
// without an id go with the instance whose name or address they carry,
// and entries of live instances, of ids the cloud calls malformed, and of
// instances a cleanup already looked at are left alone. What the entries
// knew of the instance is remembered for the workflow's recall, but not an
// address a live instance has now (web-1's, in a stale Chef node).
func TestSweepHoldings(t *testing.T) {
	t.Parallel()
	h := newHarness(t, fleet(), func(o *sim.Options) { o.ShuttingDownDuration = sim.Instant })
	inv := &memory{known: map[string]switchboard.Instance{}, settled: map[string]bool{}}
	events := &emitted{}
	h.runner.Inventory, h.runner.Events = inv, events
	const vanished, settled = "i-0aaaaaaaaaaaaaaaa", "i-0bbbbbbbbbbbbbbbb"
	inv.Remember("main", []switchboard.Instance{{ID: settled, Name: "old-2"}})
	inv.settled["main/"+settled] = true
	ctx := context.Background()
	tools, err := h.cloud.DescribeInstances(ctx, switchboard.Filter{IDs: []string{idTools}})
	if err != nil {
		t.Fatal(err)
	}
	private := tools[0].PrivateIP
	if _, err := h.cloud.TerminateInstances(ctx, []string{idTools}); err != nil {
		t.Fatal(err)
	}
	h.runner.Steps.AddStep(switchboard.StepType{Kind: "fake_cleanup", RunFunc: func(context.Context, switchboard.StepRun) error { return nil },
		Holdings: func(context.Context) ([]switchboard.Holding, error) {
			return []switchboard.Holding{
				{System: "Chef", Item: "node tools", Instance: idTools, Name: "tools", Addresses: []string{private, web1IP, "203.0.113.9"}},
				{System: "Consul", Item: "node old-1", Instance: vanished, Name: "old-1"},
				{System: "Consul", Item: "node web-1", Instance: idWeb1, Name: "web-1"},
				{System: "Consul", Item: "node old-2", Instance: settled, Name: "old-2"},
				{System: "Chef", Item: "node laptop", Instance: "not-an-id"},
				{System: "Route53", Item: "tools.example.com A", Addresses: []string{private}},
				{System: "Route53", Item: "tools-public.example.com A", Addresses: []string{"203.0.113.9"}},
				{System: "Route53", Item: "web-1.example.com A", Addresses: []string{web1IP}},
				{System: "Route53", Item: "elsewhere.example.com A", Addresses: []string{"192.0.2.1"}},
				{System: "Consul", Item: "node consul-server", Name: "consul-server"},
			}, nil
		}})
	run := &switchboard.Run{ID: "r-sweep-holdings", Workflow: "sweep", Cloud: "main", Request: switchboard.Request{ChannelID: "C0OPS"},
		Plan: []switchboard.Step{{Kind: "sweep_departed", ID: "sweep", With: json.RawMessage(`{"workflow":"decommission"}`)}}}
	got := texts(h.finish(run))
	if run.State != switchboard.RunSucceeded {
		t.Fatalf("sweep: %s %s", run.State, run.Error)
	}
	want := "Found 2 instance(s) that ended unnoticed: tools (" + idTools + "), old-1 (" + vanished + "); decommission is cleaning up after each.\n" +
		"Left behind: Chef: node tools; Route53: tools.example.com A, tools-public.example.com A; Consul: node old-1."
	if len(got) != 1 || got[0] != want {
		t.Errorf("the sweep said\n%q\nwant\n%q", got, want)
	}
	var handed []string
	for _, ev := range events.events {
		handed = append(handed, ev.DeliveryID)
	}
	if want := []string{"sweep/main/" + idTools, "sweep/main/" + vanished}; !slices.Equal(handed, want) {
		t.Errorf("handed %v, want %v", handed, want)
	}
	if in, ok, _ := inv.Recall(ctx, "main", idTools); !ok || in.Name != "tools" || in.PrivateIP != private || in.PublicIP != "203.0.113.9" || in.State != switchboard.StateTerminated {
		t.Errorf("the inventory remembers tools as %+v, %v", in, ok)
	}
	if !inv.settled["main/"+idTools] || !inv.settled["main/"+vanished] {
		t.Errorf("the handed instances are not settled: %v", inv.settled)
	}
}
