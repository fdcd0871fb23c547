package fleet

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Reads of the same instances at the same time are one call. A thousand
// "/ec2 status tools" arriving within a second would otherwise be a
// thousand DescribeInstances against a bucket that refills 20 a second.
// While a describe is in flight, an identical one waits for its answer;
// for ShareReads after it started, an identical one takes its answer. Any
// call that may change an instance (start, stop, tag...) ends the sharing
// for describes that began before it, so a run never reads a state older
// than its own action. Another process's actions are seen at most
// ShareReads late.
type reads struct {
	mu    sync.Mutex
	gen   uint64 // counts changing calls begun or ended
	calls map[string]*readCall
}

// readCall is one describe that identical ones may share.
type readCall struct {
	done  chan struct{}
	gen   uint64
	at    time.Time // when it began: what it returns is no older
	insts []switchboard.Instance
	err   error
}

// defaultShareReads is Options.ShareReads when zero.
const defaultShareReads = time.Second

// changed ends the sharing of every describe begun so far.
func (r *reads) changed() {
	r.mu.Lock()
	r.gen++
	clear(r.calls)
	r.mu.Unlock()
}

// describe answers f with a describe begun by fetch, or shares one that
// began at most window ago with no change since.
func (r *reads) describe(ctx context.Context, f switchboard.Filter, now time.Time, window time.Duration,
	fetch func(context.Context) ([]switchboard.Instance, error)) ([]switchboard.Instance, error) {
	if window < 0 {
		return fetch(ctx)
	}
	key := filterKey(f)
	r.mu.Lock()
	if r.calls == nil {
		r.calls = map[string]*readCall{}
	}
	c := r.calls[key]
	if c != nil && c.gen == r.gen && now.Sub(c.at) < window {
		r.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		// The one that asked gave up (its own deadline), not the cloud:
		// ask for ourselves.
		if !errors.Is(c.err, context.Canceled) && !errors.Is(c.err, context.DeadlineExceeded) {
			return cloneInstances(c.insts), c.err
		}
		return fetch(ctx)
	}
	c = &readCall{done: make(chan struct{}), gen: r.gen, at: now}
	r.calls[key] = c
	r.mu.Unlock()

	c.insts, c.err = fetch(ctx)
	r.mu.Lock()
	if c.err != nil && r.calls[key] == c {
		delete(r.calls, key) // a failure is shared only with those who waited for it
	}
	// Drop answers past their window so the map holds only live ones.
	for k, old := range r.calls {
		if now.Sub(old.at) >= window && old != c {
			select {
			case <-old.done:
				delete(r.calls, k)
			default:
			}
		}
	}
	r.mu.Unlock()
	close(c.done)
	return cloneInstances(c.insts), c.err
}

// filterKey names what f selects: the same ids and tags in any order are
// the same read.
func filterKey(f switchboard.Filter) string {
	ids := slices.Clone(f.IDs)
	slices.Sort(ids)
	var b strings.Builder
	for _, id := range slices.Compact(ids) {
		b.WriteString(id)
		b.WriteByte(',')
	}
	b.WriteByte('|')
	for _, k := range slices.Sorted(maps.Keys(f.Tags)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(f.Tags[k])
		b.WriteByte(',')
	}
	return b.String()
}

// cloneInstances copies what callers may change: the slice and each
// instance's tags.
func cloneInstances(insts []switchboard.Instance) []switchboard.Instance {
	if insts == nil {
		return nil
	}
	out := slices.Clone(insts)
	for i := range out {
		out[i].Tags = maps.Clone(out[i].Tags)
	}
	return out
}
