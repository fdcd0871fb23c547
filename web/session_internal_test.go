package web

import (
	"testing"
	"time"
)

// One guesser exhausts only its own logins: another address still gets
// its burst.
func TestLoginLimiterPerSource(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	l := newLoginLimiter(func() time.Time { return now })
	for i := range 10 {
		if !l.allow("203.0.113.9:51000") {
			t.Fatalf("attempt %d of the burst refused", i+1)
		}
	}
	if l.allow("203.0.113.9:51001") {
		t.Errorf("the 11th attempt from the guesser's address was allowed")
	}
	if !l.allow("198.51.100.7:40000") {
		t.Errorf("another address was locked out by the guesser")
	}
	now = now.Add(3 * time.Second)
	if !l.allow("203.0.113.9:51002") {
		t.Errorf("the guesser's address got no attempt back after 3s")
	}
}
