package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Under a steady stream of writes the checkpointer, not the committing
// connection, copies the WAL into the database, and the WAL starts over
// from its beginning after each copy instead of growing to the backstop
// (where SQLite would checkpoint in the committing connection).
func TestCheckpointerKeepsTheWALShortUnderSteadyWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sb.db")
	s, err := Open(ctx, "sqlite://"+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	subject := strings.Repeat("x", 2000)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				if _, err := s.db.ExecContext(ctx, `INSERT INTO sb_audit (at, kind, subject) VALUES (?, 'request', ?)`, w*5000+i, subject); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// 20,000 commits of at least one page each: past the backstop twice
	// over, had the WAL not started over.
	info, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	t.Logf("WAL %d KiB (%d frames at most) after 20,000 commits", info.Size()/1024, info.Size()/page)
	if max := int64(4 * checkpointAfter * page); info.Size() > max {
		t.Errorf("the WAL grew to %d KiB; want at most %d KiB (it starts over after each checkpoint)", info.Size()/1024, max/1024)
	}
}
