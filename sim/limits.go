package sim

import (
	"time"

	"golang.org/x/time/rate"
)

// Bucket is a token bucket: Burst calls at once, refilled at PerSecond.
// A zero field takes the default of its class; a negative PerSecond turns
// throttling off for the class.
type Bucket struct {
	Burst     int
	PerSecond float64
}

// Limits size the token buckets. As on EC2 every API action has a bucket of
// its own, sized by its class; the zero value is EC2's documented defaults.
type Limits struct {
	// Unlimited turns throttling off altogether, for tests and demos that
	// are not about rate limits.
	Unlimited bool

	Describe  Bucket // DescribeInstances: 100 burst, 20 per second
	Mutate    Bucket // StopInstances, RebootInstances, AssociateAddress, CreateTags, DeleteTags: 50, 5 per second
	Start     Bucket // StartInstances, RunInstances: 5, 2 per second
	Terminate Bucket // TerminateInstances: 100, 5 per second
}

var (
	defaultDescribe  = Bucket{Burst: 100, PerSecond: 20}
	defaultMutate    = Bucket{Burst: 50, PerSecond: 5}
	defaultStart     = Bucket{Burst: 5, PerSecond: 2}
	defaultTerminate = Bucket{Burst: 100, PerSecond: 5}
)

// actions lists every API action the simulated cloud answers, by EC2 name.
var actions = []string{
	"DescribeInstances", "StartInstances", "StopInstances", "RebootInstances",
	"TerminateInstances", "AssociateAddress", "RunInstances", "CreateTags", "DeleteTags",
}

// buckets returns one bucket per action; nil where throttling is off.
func (l Limits) buckets() map[string]*bucket {
	if l.Unlimited {
		return map[string]*bucket{}
	}
	return map[string]*bucket{
		"DescribeInstances":  newBucket(l.Describe, defaultDescribe),
		"StopInstances":      newBucket(l.Mutate, defaultMutate),
		"RebootInstances":    newBucket(l.Mutate, defaultMutate),
		"AssociateAddress":   newBucket(l.Mutate, defaultMutate),
		"CreateTags":         newBucket(l.Mutate, defaultMutate),
		"DeleteTags":         newBucket(l.Mutate, defaultMutate),
		"StartInstances":     newBucket(l.Start, defaultStart),
		"RunInstances":       newBucket(l.Start, defaultStart),
		"TerminateInstances": newBucket(l.Terminate, defaultTerminate),
	}
}

// bucket is a token bucket measured against the cloud's clock rather than
// the wall clock, so a test can drain and refill it by moving time.
type bucket struct{ lim *rate.Limiter }

func newBucket(b, def Bucket) *bucket {
	if b.PerSecond < 0 {
		return nil
	}
	if b.Burst == 0 {
		b.Burst = def.Burst
	}
	if b.PerSecond == 0 {
		b.PerSecond = def.PerSecond
	}
	return &bucket{lim: rate.NewLimiter(rate.Limit(b.PerSecond), b.Burst)}
}

// allow takes a token at now if there is one. A nil bucket always allows.
func (b *bucket) allow(now time.Time) bool {
	return b == nil || b.lim.AllowN(now, 1)
}
