package store

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

// A job enqueued for a schedule stands for its last due tick: the tick
// itself when on time, the last one missed at a start.
func TestLastDue(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	parse := func(spec string) cron.Schedule {
		s, err := cron.ParseStandard(spec)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tt := range []struct {
		spec, now, want string
	}{
		{"0 * * * *", "2026-12-02T13:00:00.004Z", "2026-12-02T13:00:00Z"},   // on time, a little late
		{"0 * * * *", "2026-12-02T12:59:59.800Z", "2026-12-02T13:00:00Z"},   // a hair early
		{"0 * * * *", "2026-12-02T13:41:07Z", "2026-12-02T13:00:00Z"},       // at a start: the hour's tick
		{"0 3 * * *", "2026-12-02T13:41:07Z", "2026-12-02T03:00:00Z"},       // daily
		{"0 0 1 1 *", "2026-12-02T13:41:07Z", "2026-01-01T00:00:00Z"},       // yearly: months back
		{"*/5 * * * *", "2026-12-02T13:41:07Z", "2026-12-02T13:40:00Z"},     // every five minutes
		{"CRON_TZ=Europe/Berlin 0 9 * * *", "2026-12-02T13:41:07Z", "2026-12-02T08:00:00Z"},
	} {
		if got := lastDue(parse(tt.spec), at(tt.now)); !got.Equal(at(tt.want)) {
			t.Errorf("lastDue(%q, %s) = %s, want %s", tt.spec, tt.now, got, tt.want)
		}
	}
	// @every has no fixed times: the tick is now.
	now := at("2026-12-02T13:41:07.3Z")
	if got := lastDue(parse("@every 2s"), now); !got.Equal(at("2026-12-02T13:41:07Z")) {
		t.Errorf("@every 2s: %s", got)
	}
}
