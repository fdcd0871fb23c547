package alibaba_test

import (
	"fmt"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/alibaba/ecstest"
	"github.com/switchboardhq/switchboard/providertest"
)

// ecsActions are the ECS calls behind the domain's actions, for taking a
// permission away on the test server.
var ecsActions = map[string]string{
	"start":     "StartInstances",
	"stop":      "StopInstances",
	"reboot":    "RebootInstances",
	"terminate": "DeleteInstances",
}

// TestConformance runs the provider suite against a fresh ECS test server
// per case, with the provider as a user configures it (no ForceDelete).
func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, func(t *testing.T) providertest.Bundle {
		const pool = 16
		eips := make([]string, pool)
		for i := range eips {
			eips[i] = fmt.Sprintf("47.96.1.%d", i+1)
		}
		p, srv := setup(t, ecstest.Options{Instances: []ecstest.Instance{}, EIPs: eips})
		nextEIP := 0
		return providertest.Bundle{
			Provider: p,
			SeedFunc: func(t *testing.T, n int, state switchboard.InstanceState, tags map[string]string) []string {
				status := ecstest.StatusRunning
				if state == switchboard.StateStopped {
					status = ecstest.StatusStopped
				}
				instances := make([]ecstest.Instance, n)
				for i := range instances {
					instances[i] = ecstest.Instance{Name: tags["Name"], Status: status, Tags: tags}
				}
				return srv.Add(instances...)
			},
			Launch:    switchboard.LaunchSpec{ImageID: "m-bp1imageimageimage00", Type: "ecs.g7.large"},
			UnknownID: gone,
			// The test server finishes a transition at the next
			// DescribeInstances: looking again is all the time it needs.
			WaitFunc: func() {},
			ElasticIPFunc: func(t *testing.T) string {
				if nextEIP == pool {
					t.Fatalf("the bundle's %d Elastic IPs are all handed out", pool)
				}
				nextEIP++
				return eips[nextEIP-1]
			},
			DenyFunc: func(t *testing.T, action string) { srv.Deny(ecsActions[action]) },
			Differences: providertest.Differences{
				// ECS's DeleteInstances releases only stopped instances
				// unless forced, which cuts a running instance's power;
				// the provider keeps that safe default (Options.ForceDelete
				// is off) and asks for a stop first.
				TerminatesOnlyStopped: true,
				// ECS has no shutting-down or terminated instances: a
				// deleted instance is gone from DescribeInstances at once.
				TerminateDeletes: true,
			},
		}
	})
}
