package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// SmallDisk mounts a tmpfs of size (like "16m") on a new directory and
// returns the directory, with fill, which writes a file until the disk is
// full, and free, which removes that file. The mount goes away when the
// test ends. Mounting needs root: elsewhere the test is skipped, unless
// CI=true (CI runs as root).
func SmallDisk(t testing.TB, size string) (dir string, fill, free func()) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		missing(t, "a small disk: mount -t tmpfs failed (run as root): %v %s", err, out)
		return "", nil, nil
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	filler := filepath.Join(dir, "filler")
	fill = func() {
		f, err := os.Create(filler)
		if err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Fatal(err)
		}
		if f == nil {
			return
		}
		defer f.Close()
		block := make([]byte, 64<<10)
		for {
			if _, err := f.Write(block); err != nil {
				break
			}
		}
		// The last bytes, one at a time.
		for {
			if _, err := f.Write(block[:1]); err != nil {
				return
			}
		}
	}
	free = func() {
		if err := os.Remove(filler); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	return dir, fill, free
}
