package sim_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/sim"
)

func benchFleet(n int) []switchboard.Instance {
	out := make([]switchboard.Instance, n)
	for i := range out {
		team := "web"
		if i%2 == 1 {
			team = "data"
		}
		out[i] = switchboard.Instance{ID: fmt.Sprintf("i-%017x", i+1), Name: fmt.Sprintf("host-%d", i), Tags: map[string]string{"team": team}}
	}
	return out
}

func BenchmarkDescribe(b *testing.B) {
	for _, n := range []int{10, 1000} {
		c := sim.New(sim.Options{Instances: benchFleet(n), Limits: sim.Limits{Unlimited: true}})
		ctx := context.Background()
		b.Run(fmt.Sprintf("all/fleet=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := c.DescribeInstances(ctx, switchboard.Filter{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("tag/fleet=%d", n), func(b *testing.B) {
			f := switchboard.Filter{Tags: map[string]string{"team": "web"}}
			for b.Loop() {
				if _, err := c.DescribeInstances(ctx, f); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("one-id/fleet=%d", n), func(b *testing.B) {
			f := switchboard.Filter{IDs: []string{fmt.Sprintf("i-%017x", n/2)}}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.DescribeInstances(ctx, f); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func BenchmarkStartStop(b *testing.B) {
	c := sim.New(sim.Options{
		Instances:        benchFleet(100),
		PendingDuration:  sim.Instant,
		StoppingDuration: sim.Instant,
		Limits:           sim.Limits{Unlimited: true},
	})
	ctx := context.Background()
	ids := []string{fmt.Sprintf("i-%017x", 1)}
	for b.Loop() {
		if _, err := c.StopInstances(ctx, ids, switchboard.StopOptions{}); err != nil {
			b.Fatal(err)
		}
		if _, err := c.StartInstances(ctx, ids); err != nil {
			b.Fatal(err)
		}
	}
}
