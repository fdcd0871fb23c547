package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/switchboardhq/switchboard"
)

// batches calls call over ids, deduplicated, in batches of at most size, one
// batch after the other: EC2's buckets refill at a few calls a second, so
// calls in flight at once would mostly wait for the same tokens. Results come
// back in the order the ids were asked for, batch by batch.
//
// Ids that failed on their own are collected into one
// *switchboard.PartialError returned with the results of the rest. An error
// about the call rather than its ids (permission, throttling that outlasted
// every attempt, a cancelled context) stops the batches: it is returned,
// wrapped, with the results of the batches done so far.
func batches[T any](ctx context.Context, p *Provider, action string, ids []string, size int, call func(context.Context, []string) ([]T, error)) ([]T, error) {
	ids = unique(ids)
	all := chunks(ids, size)
	var out []T
	failed := make(map[string]error)
	for i, batch := range all {
		res, err := isolate(ctx, p, action, batch, call, failed)
		out = append(out, res...)
		if err != nil {
			if len(all) > 1 {
				err = fmt.Errorf("%s, batch %d of %d: %w", action, i+1, len(all), err)
			}
			return out, err
		}
	}
	if len(failed) > 0 {
		return out, partial(failed, len(ids))
	}
	return out, nil
}

// isolate makes one batch call and, when it fails because of some of its
// instances, finds them: ids the cloud's error names are set aside and the
// rest asked again; when it names none of them, the batch is cut in halves,
// each asked on its own, down to single instances. Each id that fails on its
// own goes into failed with its error. A provider that already answers per
// instance (a *switchboard.PartialError) is taken at its word.
func isolate[T any](ctx context.Context, p *Provider, action string, ids []string, call func(context.Context, []string) ([]T, error), failed map[string]error) ([]T, error) {
	out, err := attempt(ctx, p, action, true, func(ctx context.Context) ([]T, error) { return call(ctx, ids) })
	if err == nil {
		return out, nil
	}
	var pe *switchboard.PartialError
	if errors.As(err, &pe) {
		maps.Copy(failed, pe.Failed)
		return out, nil
	}
	ce, ok := perInstance(err)
	if !ok {
		return nil, err
	}
	if len(ids) == 1 {
		failed[ids[0]] = err
		return nil, nil
	}
	// EC2 names the unknown ids of a call, and the first instance in the
	// wrong state; setting those aside costs one call per bad instance where
	// halving costs about two per level.
	if named := slices.DeleteFunc(slices.Clone(ce.IDs), func(id string) bool { return !slices.Contains(ids, id) }); len(named) > 0 {
		for _, id := range named {
			failed[id] = only(ce, id)
		}
		rest := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(named, id) })
		if len(rest) == 0 {
			return nil, nil
		}
		p.count(func(s *Stats) { s.Splits++ })
		return isolate(ctx, p, action, rest, call, failed)
	}
	p.count(func(s *Stats) { s.Splits++ })
	half := len(ids) / 2
	first, err := isolate(ctx, p, action, ids[:half], call, failed)
	if err != nil {
		return first, err
	}
	second, err := isolate(ctx, p, action, ids[half:], call, failed)
	return append(first, second...), err
}

// perInstance returns the cloud error when err is the cloud refusing some
// of a call's instances rather than the call: an instance in the wrong state,
// one that does not exist, a malformed id.
func perInstance(err error) (*switchboard.CloudError, bool) {
	var ce *switchboard.CloudError
	if !errors.As(err, &ce) {
		return nil, false
	}
	switch ce.Kind {
	case switchboard.ECONFLICT, switchboard.ENOTFOUND:
		return ce, true
	case switchboard.EINVALID:
		// An invalid parameter other than an id would fail every half too.
		return ce, len(ce.IDs) > 0
	}
	return nil, false
}

// only is ce narrowed to one of the instances it names.
func only(ce *switchboard.CloudError, id string) error {
	one := *ce
	one.IDs = []string{id}
	return &one
}

// partial is the error for a batch in which the ids in failed failed. When
// every id failed, and for the same kind of reason, it also unwraps to the
// first failure, so switchboard.ErrorCode and ErrorMessage see what they saw
// before batching: a lone unknown id still reads ENOTFOUND.
func partial(failed map[string]error, asked int) error {
	pe := &switchboard.PartialError{Failed: failed}
	if len(failed) < asked {
		return pe
	}
	var first error
	for _, id := range slices.Sorted(maps.Keys(failed)) {
		err := failed[id]
		if first == nil {
			first = err
		} else if switchboard.ErrorCode(err) != switchboard.ErrorCode(first) {
			return pe
		}
	}
	return &allFailed{partial: pe, first: first}
}

// allFailed is a PartialError in which every instance failed alike.
type allFailed struct {
	partial *switchboard.PartialError
	first   error
}

func (e *allFailed) Error() string   { return e.partial.Error() + ": " + e.first.Error() }
func (e *allFailed) Unwrap() []error { return []error{e.partial, e.first} }

// attempt makes one call, waiting for a token of its action first, and makes
// it again after a jittered backoff while the cloud answers that it is
// throttling or unavailable, up to MaxAttempts. A call that may have taken
// effect before failing is made again only when idempotent.
func attempt[T any](ctx context.Context, p *Provider, action string, idempotent bool, call func(context.Context) ([]T, error)) ([]T, error) {
	if action != "DescribeInstances" {
		// A call that may change instances: describes begun before it or
		// while it runs are not shared after it.
		p.reads.changed()
		defer p.reads.changed()
	}
	for n := 1; ; n++ {
		if err := p.take(ctx, action); err != nil {
			return nil, err
		}
		out, err := within(ctx, p.opts.CallTimeout, action, call)
		code := switchboard.ErrorCode(err)
		p.count(func(s *Stats) {
			s.Calls[action]++
			switch code {
			case switchboard.ETHROTTLED:
				s.Throttled++
			case switchboard.EUNAVAILABLE:
				s.Unavailable++
			}
		})
		if code == switchboard.ETHROTTLED {
			p.drain(action)
		}
		// A call the cloud left unanswered is made twice at most: the
		// caller hears of a silent cloud within two CallTimeouts.
		retry := code == switchboard.ETHROTTLED ||
			code == switchboard.EUNAVAILABLE && idempotent && (n < 2 || !unanswered(err))
		if !retry || n >= p.opts.MaxAttempts || ctx.Err() != nil {
			return out, err
		}
		d := p.backoff(n, err)
		p.count(func(s *Stats) { s.Retries++; s.Backoff += d })
		if serr := p.opts.SleepFunc(ctx, d); serr != nil {
			return nil, fmt.Errorf("%s: gave up waiting to retry (%w): %w", action, serr, err)
		}
	}
}

// codeTimeout is the code of a call the cloud left unanswered.
const codeTimeout = "Timeout"

// within makes one call, for at most timeout: a call the cloud leaves
// unanswered that long is an outage (EUNAVAILABLE), like a refused
// connection, rather than a wait as long as the caller's.
func within[T any](ctx context.Context, timeout time.Duration, action string, call func(context.Context) ([]T, error)) ([]T, error) {
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := call(callCtx)
	if err != nil && ctx.Err() == nil && errors.Is(callCtx.Err(), context.DeadlineExceeded) {
		return out, &switchboard.CloudError{Code: codeTimeout, Message: fmt.Sprintf("%s got no answer within %s", action, timeout), Kind: switchboard.EUNAVAILABLE}
	}
	return out, err
}

func unanswered(err error) bool {
	var ce *switchboard.CloudError
	return errors.As(err, &ce) && ce.Code == codeTimeout
}

// backoff is how long to wait after attempt n failed with err: a random
// share of an exponentially growing ceiling, so many callers throttled at
// once do not come back at once, and never less than the cloud asked for.
func (p *Provider) backoff(n int, err error) time.Duration {
	ceiling := p.opts.MaxDelay
	if n-1 < 32 {
		ceiling = min(p.opts.BaseDelay<<(n-1), p.opts.MaxDelay)
	}
	d := time.Duration(p.opts.RandFunc() * float64(ceiling))
	var ce *switchboard.CloudError
	var se *switchboard.Error
	if errors.As(err, &ce) && ce.RetryAfter > d {
		d = ce.RetryAfter
	} else if errors.As(err, &se) && se.RetryAfter > d {
		d = se.RetryAfter
	}
	return d
}

// take waits for a token of action's bucket, so the calls stay inside the
// cloud's limits instead of finding them by being throttled.
func (p *Provider) take(ctx context.Context, action string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	lim := p.limiters[action]
	if lim == nil {
		return nil
	}
	now := p.opts.NowFunc()
	r := lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	p.count(func(s *Stats) { s.TokenWait += d })
	if err := p.opts.SleepFunc(ctx, d); err != nil {
		// Give the token back for the calls that are still coming.
		r.CancelAt(p.opts.NowFunc())
		return fmt.Errorf("%s: waiting for the request limit: %w", action, err)
	}
	return nil
}

// drain empties action's bucket after the cloud throttled it: the cloud's
// bucket is per account, so other clients spend it too, and when it says it
// is empty the calls that follow should be paced at its refill rate rather
// than each find out by being throttled.
func (p *Provider) drain(action string) {
	lim := p.limiters[action]
	if lim == nil {
		return
	}
	now := p.opts.NowFunc()
	if n := int(lim.TokensAt(now)); n > 0 {
		lim.ReserveN(now, n)
	}
}

func (p *Provider) count(f func(*Stats)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.stats)
}

// unique returns ids without repeats, in their first order, so an id named
// twice is not in two batches.
func unique(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func chunks(ids []string, size int) [][]string {
	var out [][]string
	for batch := range slices.Chunk(ids, size) {
		out = append(out, batch)
	}
	return out
}
