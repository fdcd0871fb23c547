package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/engine"
	"github.com/switchboardhq/switchboard/store"
)

// BenchmarkCreateRun measures the durable part of an ack: authorize, plan and
// write the run, its audit lines and its job in one transaction, with no
// workers running.
func BenchmarkCreateRun(b *testing.B) {
	s, err := store.Open(context.Background(), "sqlite://"+filepath.Join(b.TempDir(), "sb.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cmds := &engine.Commands{Specs: []switchboard.CommandSpec{ec2}, Runs: s}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := cmds.HandleCommand(ctx, consoleRequest("status tools")); err != nil {
			b.Fatal(err)
		}
	}
}
