package main

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

func rssFileKiB(t *testing.T) int {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// The executable's pages are released, and what runs afterwards (this
// test's own code, the runtime's) is mapped again as it is touched.
func TestReleaseStartupMemoryReleasesTheExecutablesPages(t *testing.T) {
	before := rssFileKiB(t)
	releaseStartupMemory()
	after := rssFileKiB(t)
	t.Logf("RssFile %d KiB before, %d KiB after", before, after)
	if after > before/2 {
		t.Fatalf("RssFile went from %d KiB to %d KiB; want it at least halved", before, after)
	}
	if got := banner(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, false, ""); got == "" {
		t.Fatal("code run after the release does not work")
	}
}
