// Package fleet makes a cloud provider safe to point at a whole fleet. It
// wraps any switchboard.Provider (EC2, Alibaba ECS, the simulated cloud) and
// keeps its calls inside the cloud's request limits, cuts long id lists into
// batches the API accepts, retries what the cloud says is worth retrying, and
// when a batch fails because of some of its instances, finds those instances
// so the others still get done and every failure is reported against the
// instance it belongs to.
//
// A stop of 2,000 instances is then twenty StopInstances calls that stay in
// EC2's token buckets, and one instance in the wrong state costs one more
// call instead of failing the command.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboardhq/switchboard"
)

// Bucket is a token bucket: Burst calls at once, refilled at PerSecond.
type Bucket struct {
	Burst     int
	PerSecond float64
}

// Limits size the token buckets. As on EC2, every API action has a bucket
// of its own, sized by its class. A zero field takes EC2's size for its
// class; a negative PerSecond turns limiting off for the class.
type Limits struct {
	Describe  Bucket // DescribeInstances, EC2's non-mutating class: 100 burst, 20 per second
	Mutate    Bucket // StopInstances, RebootInstances, AssociateAddress, CreateTags, DeleteTags: 50, 5 per second
	Start     Bucket // StartInstances, RunInstances: 5, 2 per second
	Terminate Bucket // TerminateInstances: 100, 5 per second
}

// EC2Limits returns the buckets EC2 documents for an account in a region.
func EC2Limits() Limits {
	return Limits{
		Describe:  Bucket{Burst: 100, PerSecond: 20},
		Mutate:    Bucket{Burst: 50, PerSecond: 5},
		Start:     Bucket{Burst: 5, PerSecond: 2},
		Terminate: Bucket{Burst: 100, PerSecond: 5},
	}
}

// BatchSizes are how many instance ids one call names at most. A zero field
// takes the default.
type BatchSizes struct {
	Describe  int // DescribeInstances by id; default 200
	Mutate    int // StartInstances, StopInstances, RebootInstances, dry runs; default 100
	Terminate int // TerminateInstances; default 1000, EC2's maximum
	// Tag is TagInstances and UntagInstances; default 50, the most ECS's
	// TagResources and UntagResources take, so the default is safe on every
	// cloud. EC2's CreateTags and DeleteTags take up to 1000.
	Tag int
}

// maxIDs is the most ids EC2 accepts in one call.
const maxIDs = 1000

// defaultTagBatch is the default of BatchSizes.Tag.
const defaultTagBatch = 50

// Options configure a wrapped provider. The zero value is EC2's limits, the
// default batch sizes and six attempts per call.
type Options struct {
	Limits Limits
	Batch  BatchSizes

	// MaxAttempts is how many times one call is made before its throttling
	// or unavailability is returned; default 6.
	MaxAttempts int
	// BaseDelay and MaxDelay bound the exponential backoff between attempts:
	// before attempt n+1 the wait is a random share of
	// min(MaxDelay, BaseDelay·2^(n-1)) ("full jitter"), or the cloud's
	// RetryAfter when that is longer. Defaults 200ms and 20s.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// CallTimeout is how long one call may go unanswered before it counts
	// as the cloud not answering (EUNAVAILABLE, code Timeout); default
	// 20s. Such a call is made twice at most, which bounds how long a
	// silent cloud keeps a run from telling its channel: the engine parks
	// the run, says so and tries again until its deadline.
	CallTimeout time.Duration

	// NowFunc is the clock the token buckets are measured against; nil means
	// time.Now. SleepFunc waits for d or until ctx is done, returning ctx's
	// error then; nil means a timer. Tests pass a fake clock's Now and a
	// SleepFunc that moves it, so waits cost no real time.
	NowFunc   func() time.Time
	SleepFunc func(ctx context.Context, d time.Duration) error
	// RandFunc returns a number in [0, 1) for the jitter; nil means
	// math/rand/v2.Float64.
	RandFunc func() float64
	// SeenFunc, when set, is told every instance a describe or a launch
	// returned (an Inventory's Remember).
	SeenFunc func(insts []switchboard.Instance)
	// ShareReads is how long after an identical describe began its answer
	// serves another, unless a call that may change instances came between
	// (see reads); default 1s, negative turns sharing off.
	ShareReads time.Duration
}

// Validate reports an option that cannot work, naming the field.
func (o Options) Validate() error {
	var errs []error
	for _, b := range []struct {
		name string
		size int
	}{{"Describe", o.Batch.Describe}, {"Mutate", o.Batch.Mutate}, {"Terminate", o.Batch.Terminate}, {"Tag", o.Batch.Tag}} {
		if b.size < 0 || b.size > maxIDs {
			errs = append(errs, fmt.Errorf("fleet: Options.Batch.%s is %d; EC2 takes 1 to %d ids per call (0 means the default)", b.name, b.size, maxIDs))
		}
	}
	for _, b := range []struct {
		name string
		b    Bucket
	}{{"Describe", o.Limits.Describe}, {"Mutate", o.Limits.Mutate}, {"Start", o.Limits.Start}, {"Terminate", o.Limits.Terminate}} {
		if b.b.Burst < 0 {
			errs = append(errs, fmt.Errorf("fleet: Options.Limits.%s.Burst is %d; want at least 1 (0 means EC2's)", b.name, b.b.Burst))
		}
	}
	if o.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("fleet: Options.MaxAttempts is %d; want at least 1 (0 means 6)", o.MaxAttempts))
	}
	if o.CallTimeout < 0 {
		errs = append(errs, errors.New("fleet: Options.CallTimeout cannot be negative (0 means 20s)"))
	}
	if o.BaseDelay < 0 || o.MaxDelay < 0 {
		errs = append(errs, errors.New("fleet: Options.BaseDelay and MaxDelay cannot be negative (0 means 200ms and 20s)"))
	}
	if o.BaseDelay > 0 && o.MaxDelay > 0 && o.MaxDelay < o.BaseDelay {
		errs = append(errs, fmt.Errorf("fleet: Options.MaxDelay (%s) is shorter than BaseDelay (%s)", o.MaxDelay, o.BaseDelay))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	def := EC2Limits()
	o.Limits.Describe = bucketOr(o.Limits.Describe, def.Describe)
	o.Limits.Mutate = bucketOr(o.Limits.Mutate, def.Mutate)
	o.Limits.Start = bucketOr(o.Limits.Start, def.Start)
	o.Limits.Terminate = bucketOr(o.Limits.Terminate, def.Terminate)
	o.Batch.Describe = intOr(o.Batch.Describe, 200)
	o.Batch.Mutate = intOr(o.Batch.Mutate, 100)
	o.Batch.Terminate = intOr(o.Batch.Terminate, maxIDs)
	o.Batch.Tag = intOr(o.Batch.Tag, defaultTagBatch)
	o.MaxAttempts = intOr(o.MaxAttempts, 6)
	if o.CallTimeout == 0 {
		o.CallTimeout = 20 * time.Second
	}
	if o.BaseDelay == 0 {
		o.BaseDelay = 200 * time.Millisecond
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = 20 * time.Second
	}
	if o.ShareReads == 0 {
		o.ShareReads = defaultShareReads
	}
	if o.NowFunc == nil {
		o.NowFunc = time.Now
	}
	if o.SleepFunc == nil {
		o.SleepFunc = sleep
	}
	if o.RandFunc == nil {
		o.RandFunc = rand.Float64
	}
	return o
}

func bucketOr(b, def Bucket) Bucket {
	if b.Burst == 0 {
		b.Burst = def.Burst
	}
	if b.PerSecond == 0 {
		b.PerSecond = def.PerSecond
	}
	return b
}

func intOr(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Stats count what a wrapped provider did, for benchmarks, tests and the
// metrics page.
type Stats struct {
	Calls       map[string]int // calls made to the cloud, by EC2 action name; retries and dry runs included
	Throttled   int            // calls the cloud answered ETHROTTLED (RequestLimitExceeded)
	Unavailable int            // calls the cloud answered EUNAVAILABLE (InternalError, 5xx)
	Retries     int            // calls made again after one of those
	Splits      int            // batches cut smaller to find the instances that made them fail
	TokenWait   time.Duration  // time spent waiting for a token before calling
	Backoff     time.Duration  // time spent backing off between attempts
}

// TotalCalls is the number of calls made to the cloud, all actions together.
func (s Stats) TotalCalls() int {
	n := 0
	for _, c := range s.Calls {
		n += c
	}
	return n
}

// Provider is a switchboard.Provider made safe at fleet scale. Make one per
// cloud account and region (cmd makes one per configured cloud), since that
// is what EC2's buckets are per. It is safe for concurrent use; calls made at
// once share the buckets.
type Provider struct {
	cloud    switchboard.Provider
	opts     Options
	limiters map[string]*rate.Limiter // by EC2 action; nil means unlimited

	mu    sync.Mutex
	stats Stats
	reads reads
}

var _ switchboard.Provider = (*Provider)(nil)

// Wrap returns p made safe at fleet scale. It panics when opts.Validate
// reports a problem; call Validate first when opts come from a user's file.
func Wrap(p switchboard.Provider, opts Options) *Provider {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	opts = opts.withDefaults()
	l := opts.Limits
	return &Provider{
		cloud: p,
		opts:  opts,
		limiters: map[string]*rate.Limiter{
			"DescribeInstances":  limiter(l.Describe),
			"StopInstances":      limiter(l.Mutate),
			"RebootInstances":    limiter(l.Mutate),
			"AssociateAddress":   limiter(l.Mutate),
			"CreateTags":         limiter(l.Mutate),
			"DeleteTags":         limiter(l.Mutate),
			"StartInstances":     limiter(l.Start),
			"RunInstances":       limiter(l.Start),
			"TerminateInstances": limiter(l.Terminate),
		},
		stats: Stats{Calls: make(map[string]int)},
	}
}

func limiter(b Bucket) *rate.Limiter {
	if b.PerSecond < 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(b.PerSecond), b.Burst)
}

// Stats returns a copy of the counts so far.
func (p *Provider) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Calls = maps.Clone(p.stats.Calls)
	return s
}

// DescribeInstances describes the instances f selects. With ids it asks in
// batches, and an id the cloud does not know (which fails a whole EC2 call)
// is reported in a *switchboard.PartialError next to the instances found.
// Identical describes at the same time share one call (Options.ShareReads).
func (p *Provider) DescribeInstances(ctx context.Context, f switchboard.Filter) ([]switchboard.Instance, error) {
	return p.reads.describe(ctx, f, p.opts.NowFunc(), p.opts.ShareReads, func(ctx context.Context) ([]switchboard.Instance, error) {
		return p.describe(ctx, f)
	})
}

func (p *Provider) describe(ctx context.Context, f switchboard.Filter) ([]switchboard.Instance, error) {
	const action = "DescribeInstances"
	var insts []switchboard.Instance
	var err error
	if len(f.IDs) == 0 {
		insts, err = attempt(ctx, p, action, true, func(ctx context.Context) ([]switchboard.Instance, error) {
			return p.cloud.DescribeInstances(ctx, f)
		})
	} else {
		insts, err = batches(ctx, p, action, f.IDs, p.opts.Batch.Describe, func(ctx context.Context, ids []string) ([]switchboard.Instance, error) {
			return p.cloud.DescribeInstances(ctx, switchboard.Filter{IDs: ids, Tags: f.Tags})
		})
	}
	p.seen(insts)
	return insts, err
}

func (p *Provider) seen(insts []switchboard.Instance) {
	if p.opts.SeenFunc != nil && len(insts) > 0 {
		p.opts.SeenFunc(insts)
	}
}

// StartInstances starts instances in batches. When some of them cannot be
// started the others still are: their changes come back with a
// *switchboard.PartialError naming the ones that failed.
func (p *Provider) StartInstances(ctx context.Context, ids []string) ([]switchboard.StateChange, error) {
	return batches(ctx, p, "StartInstances", ids, p.opts.Batch.Mutate, p.cloud.StartInstances)
}

// StopInstances stops instances in batches, as StartInstances starts them.
func (p *Provider) StopInstances(ctx context.Context, ids []string, opts switchboard.StopOptions) ([]switchboard.StateChange, error) {
	return batches(ctx, p, "StopInstances", ids, p.opts.Batch.Mutate, func(ctx context.Context, ids []string) ([]switchboard.StateChange, error) {
		return p.cloud.StopInstances(ctx, ids, opts)
	})
}

// RebootInstances reboots instances in batches; a *switchboard.PartialError
// names the ones that could not be rebooted.
func (p *Provider) RebootInstances(ctx context.Context, ids []string) error {
	_, err := batches(ctx, p, "RebootInstances", ids, p.opts.Batch.Mutate, func(ctx context.Context, ids []string) ([]struct{}, error) {
		return nil, p.cloud.RebootInstances(ctx, ids)
	})
	return err
}

// TerminateInstances terminates instances in batches of up to 1000, as
// StartInstances starts them.
func (p *Provider) TerminateInstances(ctx context.Context, ids []string) ([]switchboard.StateChange, error) {
	return batches(ctx, p, "TerminateInstances", ids, p.opts.Batch.Terminate, p.cloud.TerminateInstances)
}

// AssociateAddress attaches an Elastic IP, within the limits and with retries.
func (p *Provider) AssociateAddress(ctx context.Context, instanceID, publicIP string) error {
	_, err := attempt(ctx, p, "AssociateAddress", true, func(ctx context.Context) ([]struct{}, error) {
		return nil, p.cloud.AssociateAddress(ctx, instanceID, publicIP)
	})
	return err
}

// RunInstances launches instances within the limits. A launch the cloud may
// have carried out before failing (InternalError) is retried only with a
// ClientToken, which makes the retry return the first launch's instances
// rather than launch more; a throttled launch was refused, so it is always
// retried.
func (p *Provider) RunInstances(ctx context.Context, spec switchboard.LaunchSpec) ([]switchboard.Instance, error) {
	insts, err := attempt(ctx, p, "RunInstances", spec.ClientToken != "", func(ctx context.Context) ([]switchboard.Instance, error) {
		return p.cloud.RunInstances(ctx, spec)
	})
	p.seen(insts)
	return insts, err
}

// TagInstances sets tags on instances in batches (BatchSizes.Tag), each
// call waiting for a token of CreateTags' bucket (the mutating class) and
// retried while the cloud throttles it or is unavailable: setting a tag
// twice is setting it once. When some of the instances cannot be tagged (an
// unknown id) the batch is cut until they are found, the others are still
// tagged, and a *switchboard.PartialError names the ones that failed.
func (p *Provider) TagInstances(ctx context.Context, ids []string, tags map[string]string) error {
	_, err := batches(ctx, p, "CreateTags", ids, p.opts.Batch.Tag, func(ctx context.Context, ids []string) ([]struct{}, error) {
		return nil, p.cloud.TagInstances(ctx, ids, tags)
	})
	return err
}

// UntagInstances removes tags from instances in batches, as TagInstances
// sets them, on DeleteTags' bucket.
func (p *Provider) UntagInstances(ctx context.Context, ids []string, keys []string) error {
	_, err := batches(ctx, p, "DeleteTags", ids, p.opts.Batch.Tag, func(ctx context.Context, ids []string) ([]struct{}, error) {
		return nil, p.cloud.UntagInstances(ctx, ids, keys)
	})
	return err
}

// DryRun asks the cloud, batch by batch, whether action on ids would be
// allowed, and returns the first answer that is not nil.
func (p *Provider) DryRun(ctx context.Context, action string, ids []string) error {
	call, ok := switchboard.DryRunCalls[action]
	if !ok {
		// The cloud's own answer says what is wrong with the action.
		return p.cloud.DryRun(ctx, action, ids)
	}
	size := p.opts.Batch.Mutate
	if call == "TerminateInstances" {
		size = p.opts.Batch.Terminate
	}
	for _, batch := range chunks(unique(ids), size) {
		_, err := attempt(ctx, p, call, true, func(ctx context.Context) ([]struct{}, error) {
			return nil, p.cloud.DryRun(ctx, action, batch)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
