package sim_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/providertest"
	"github.com/switchboardhq/switchboard/sim"
)

// TestConformance runs the provider suite against a fresh simulated cloud
// per case. The simulated cloud copies EC2, so it needs no Differences.
func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, func(t *testing.T) providertest.Bundle {
		return conformanceBundle(t)
	})
}

// conformanceBundle is an empty simulated cloud on a hand-driven clock with
// EC2's transition durations, so the suite's waits move the clock instead of
// sleeping. It is unthrottled: the suite does not pace its calls, and the
// token buckets have tests of their own.
func conformanceBundle(t *testing.T) providertest.Bundle {
	const pool = 16
	elastic := make([]string, pool)
	for i := range elastic {
		elastic[i] = fmt.Sprintf("100.64.0.%d", i+1)
	}
	clock := sim.NewClock(t0)
	c := sim.New(sim.Options{NowFunc: clock.Now, Limits: sim.Limits{Unlimited: true}, ElasticIPs: elastic})
	nextEIP := 0
	return providertest.Bundle{
		Provider: c,
		// The simulated cloud takes its fleet at New, before a case says
		// what it needs, so a case's instances are launched and stopped
		// through the cloud's own calls, with the clock moved past each
		// transition.
		SeedFunc: func(t *testing.T, n int, state switchboard.InstanceState, tags map[string]string) []string {
			t.Helper()
			launched, err := c.RunInstances(t.Context(), sim.RunSpec{ImageID: ami, Count: n, Tags: tags})
			if err != nil {
				t.Fatalf("seed: RunInstances: %v", err)
			}
			clock.Advance(sim.DefaultPendingDuration)
			if state == switchboard.StateStopped {
				if _, err := c.StopInstances(t.Context(), ids(launched), switchboard.StopOptions{}); err != nil {
					t.Fatalf("seed: StopInstances: %v", err)
				}
				clock.Advance(sim.DefaultStoppingDuration)
			}
			return ids(launched)
		},
		Launch:    sim.RunSpec{ImageID: ami},
		UnknownID: idUnknown,
		WaitFunc:  func() { clock.Advance(time.Second) },
		ElasticIPFunc: func(t *testing.T) string {
			if nextEIP == pool {
				t.Fatalf("the bundle's %d Elastic IPs are all handed out", pool)
			}
			nextEIP++
			return elastic[nextEIP-1]
		},
		DenyFunc: func(t *testing.T, action string) { c.Deny(action) },
	}
}
