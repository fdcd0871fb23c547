package fleet_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/fleet"
	"github.com/switchboardhq/switchboard/sim"
)

// A thousand status reads of one instance at once, under EC2's limits, are
// one DescribeInstances: they share the call in flight. A stop in between
// ends the sharing, so the next read sees the stop.
func TestIdenticalReadsShareOneCall(t *testing.T) {
	cloud := sim.New(sim.Options{Instances: instances(3, nil), Latency: 20 * time.Millisecond})
	p := fleet.Wrap(cloud, fleet.Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for range 1000 {
		wg.Go(func() {
			got, err := p.DescribeInstances(ctx, switchboard.Filter{IDs: []string{id(0)}})
			if err == nil && (len(got) != 1 || got[0].State != switchboard.StateRunning) {
				t.Errorf("read %+v", got)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := cloud.Stats().Calls["DescribeInstances"]; n > 10 {
		t.Errorf("1,000 identical reads made %d DescribeInstances calls, want at most 10", n)
	}
	// Reads sharing is per selection: another instance is its own call.
	if _, err := p.DescribeInstances(ctx, switchboard.Filter{IDs: []string{id(1)}}); err != nil {
		t.Fatal(err)
	}
	before := cloud.Stats().Calls["DescribeInstances"]
	if _, err := p.StopInstances(ctx, []string{id(0)}, switchboard.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := p.DescribeInstances(ctx, switchboard.Filter{IDs: []string{id(0)}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].State == switchboard.StateRunning {
		t.Errorf("after a stop the read said %s: a shared answer from before the stop", got[0].State)
	}
	if cloud.Stats().Calls["DescribeInstances"] != before+1 {
		t.Errorf("the read after the stop did not ask the cloud")
	}
	// Sharing off: every read is a call.
	off := fleet.Wrap(cloud, fleet.Options{ShareReads: -1})
	before = cloud.Stats().Calls["DescribeInstances"]
	for range 3 {
		if _, err := off.DescribeInstances(ctx, switchboard.Filter{IDs: []string{id(2)}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := cloud.Stats().Calls["DescribeInstances"] - before; n != 3 {
		t.Errorf("with ShareReads off, 3 reads made %d calls", n)
	}
}
