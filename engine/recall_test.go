package engine_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/sim"
)

// memory is an Inventory kept in a map.
type memory struct {
	mu    sync.Mutex
	known map[string]switchboard.Instance
}

func (m *memory) Remember(cloud string, insts []switchboard.Instance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, in := range insts {
		m.known[cloud+"/"+in.ID] = in
	}
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
	inv := &memory{known: map[string]switchboard.Instance{}}
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
