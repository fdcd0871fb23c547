package fleet_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/fleet"
	"github.com/switchboardhq/switchboard/providertest"
	"github.com/switchboardhq/switchboard/sim"
)

// TestConformance runs the provider suite against the simulated cloud
// wrapped for fleet scale with EC2's limits, so that what code above a
// provider may rely on holds with the wrapper in between too. Token waits and
// backoffs move the simulated clock rather than sleeping.
func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, func(t *testing.T) providertest.Bundle {
		const pool = 16
		elastic := make([]string, pool)
		for i := range elastic {
			elastic[i] = fmt.Sprintf("100.64.0.%d", i+1)
		}
		b := setup(t, sim.Options{Limits: sim.Limits{Unlimited: true}, ElasticIPs: elastic}, fleet.Options{}, nil)
		cloud, clock := b.cloud, b.clock
		nextEIP := 0
		return providertest.Bundle{
			Provider: b.fleet,
			// The case's instances are launched and stopped on the
			// simulated cloud itself, with the clock moved past each
			// transition, so the wrapper sees only the suite's calls.
			SeedFunc: func(t *testing.T, n int, state switchboard.InstanceState, tags map[string]string) []string {
				t.Helper()
				launched, err := cloud.RunInstances(t.Context(), sim.RunSpec{ImageID: "ami-0abcdef1234567890", Count: n, Tags: tags})
				if err != nil {
					t.Fatalf("seed: RunInstances: %v", err)
				}
				var out []string
				for _, in := range launched {
					out = append(out, in.ID)
				}
				clock.Advance(sim.DefaultPendingDuration)
				if state == switchboard.StateStopped {
					if _, err := cloud.StopInstances(t.Context(), out, switchboard.StopOptions{}); err != nil {
						t.Fatalf("seed: StopInstances: %v", err)
					}
					clock.Advance(sim.DefaultStoppingDuration)
				}
				return out
			},
			Launch:    switchboard.LaunchSpec{ImageID: "ami-0abcdef1234567890"},
			UnknownID: "i-0123456789abcdef0",
			WaitFunc:  func() { clock.Advance(time.Second) },
			ElasticIPFunc: func(t *testing.T) string {
				if nextEIP == pool {
					t.Fatalf("the bundle's %d Elastic IPs are all handed out", pool)
				}
				nextEIP++
				return elastic[nextEIP-1]
			},
			DenyFunc: func(t *testing.T, action string) { cloud.Deny(action) },
			Differences: providertest.Differences{
				// What the wrapper is for: a batch with instances that
				// fail on their own is cut until those are found, and the
				// rest are still acted on.
				IsolatesFailures: true,
			},
		}
	})
}
