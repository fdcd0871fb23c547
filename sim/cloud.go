// Package sim is Switchboard's simulated cloud: an in-memory EC2 account in
// one region. It is the default cloud of a fresh install, so a team can try
// every command before giving Switchboard real credentials, and it is the
// cloud the tests and benchmarks run against.
//
// It copies EC2 wherever Switchboard's code depends on it: instance states
// move through pending, stopping and shutting-down on their own as the clock
// advances; a call fails as a whole with EC2's error codes and messages
// (InvalidInstanceID.Malformed, InvalidInstanceID.NotFound,
// IncorrectInstanceState, RequestLimitExceeded...); every API action has its
// own token bucket sized like EC2's; RunInstances honours ClientToken; public
// addresses come and go with the instance state while Elastic IPs stay. States
// advance lazily from Options.NowFunc when the cloud is looked at, so there are
// no goroutines or timers and a test drives time with a Clock.
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard"
)

// Instant, given as a transition duration, makes the transition take no time:
// the call that starts it still answers with the transitional state (EC2
// always says "pending" to a start), and every later call sees it finished.
const Instant time.Duration = -1

// Default transition durations: quick enough for a demo, slow enough that
// "still booting" is something a person sees.
const (
	DefaultPendingDuration      = 5 * time.Second
	DefaultStoppingDuration     = 4 * time.Second
	DefaultShuttingDownDuration = 3 * time.Second
	DefaultRebootDuration       = 2 * time.Second
)

// TerminatedVisibility is how long a terminated instance stays in
// DescribeInstances before it disappears, as on EC2.
const TerminatedVisibility = time.Hour

// maxIDs caps the instance ids one call may name; EC2 documents 1000 for
// TerminateInstances and answers larger batches of the others with an error too.
const maxIDs = 1000

// Options configure a simulated cloud. The zero value is an empty account
// with demo-speed transitions and EC2's rate limits.
type Options struct {
	// Instances is the fleet the cloud starts with. An empty ID gets a
	// generated one, an empty State means running, an empty PrivateIP gets one
	// from 172.31.0.0/16, and a zero LaunchTime means now. A running or
	// stopping instance without a PublicIP gets an auto-assigned one. A
	// PublicIP is kept as the instance's Elastic IP when ElasticIPs lists it
	// or the instance is stopped (only Elastic IPs survive a stop); otherwise
	// it is an auto-assigned address, released when the instance stops.
	// Validate reports a malformed or duplicate id, an unknown state or a
	// shared public address.
	Instances []switchboard.Instance

	// ElasticIPs are the addresses the account has allocated. AssociateAddress
	// refuses others with InvalidAddress.NotFound. Nil accepts any IPv4
	// address that is not another instance's auto-assigned one.
	ElasticIPs []string

	// How long pending->running, stopping->stopped, shutting-down->terminated
	// and a reboot take. Zero means the default above; Instant (any negative
	// value) means no time at all.
	PendingDuration      time.Duration
	StoppingDuration     time.Duration
	ShuttingDownDuration time.Duration
	RebootDuration       time.Duration

	// NowFunc is the clock every state change and token bucket is measured
	// against. Nil means time.Now. It must be safe for concurrent use.
	NowFunc func() time.Time

	// Limits are the per-action token buckets. The zero value is EC2's.
	Limits Limits

	// DeniedActions are the actions (start, stop, reboot, terminate) the
	// simulated credentials may not take: DryRun answers
	// UnauthorizedOperation for them. The calls themselves are not refused.
	DeniedActions []string

	// Latency is how long every call takes before it acts, to emulate an API
	// round trip in benchmarks. It runs on the real clock, not NowFunc, and
	// ends early with the context's error when the context is done.
	Latency time.Duration

	// StateFile, when set, is where the cloud remembers its account across
	// restarts, as a real cloud does: every instance with its state and when
	// its transition ends, addresses, reboots, client tokens and Elastic IPs.
	// If the file exists New loads it and Instances and ElasticIPs are
	// ignored (they only seed a fresh file); its times are read on NowFunc's
	// clock, so a restarted process must use the same clock. Every call that
	// changes something rewrites the file atomically; when that write fails
	// the call changes nothing and answers InternalError. Token buckets,
	// stats and faults are not kept. Validate reports a file it cannot read.
	StateFile string
}

// RunSpec is a RunInstances request. The simulator checks ImageID ("ami-"
// and 8 or 17 hex digits), Count (1 to 1000; zero means 1), UserData (at most
// 16 KiB, as on EC2) and ClientToken (at most 64 characters); a second call
// with the same ClientToken returns the instances of the first instead of
// launching more, and fails with IdempotentParameterMismatch when the rest of
// the spec differs. An empty Type means t3.micro.
type RunSpec = switchboard.LaunchSpec

// Detail is what the simulated cloud knows about an instance beyond what
// DescribeInstances shows, for tests that check what a workflow did.
type Detail struct {
	switchboard.Instance
	ImageID     string
	UserData    string
	ClientToken string
	ElasticIP   string // the associated Elastic IP, if any
	Reboots     int    // reboots requested over the instance's life
	Starts      int    // times a start moved it from stopped to pending
	Stops       int    // times a stop moved it from running to stopping
	Rebooting   bool   // a reboot is under way (EC2 still says running)
}

// Cloud is a simulated EC2 account in one region. It is safe for concurrent
// use; every call acts atomically on the whole fleet.
type Cloud struct {
	now       func() time.Time
	latency   time.Duration
	pending   time.Duration
	stopping  time.Duration
	shutting  time.Duration
	reboot    time.Duration
	buckets   map[string]*bucket // by action; nil entry means unlimited
	unlimited bool               // no buckets at all
	addresses *addressBook
	stateFile string

	mu        sync.Mutex
	denied    []string // actions dry runs refuse; Deny adds to them
	instances map[string]*record
	launches  map[string]*launch // by client token
	faults    []*fault
	stats     Stats
	privateN  int
	saved     []byte // the state as last saved (or loaded, or seeded), for undoing a call whose save failed
	written   bool   // whether saved is in the state file yet
}

var _ switchboard.Provider = (*Cloud)(nil)

// record is one instance as the cloud keeps it.
type record struct {
	switchboard.Instance           // PublicIP is derived from elasticIP and autoIP on every view
	until                time.Time // when the current transitional state ends
	goneAt               time.Time // when a terminated instance leaves Describe
	autoIP               string
	elasticIP            string
	imageID              string
	userData             string
	clientToken          string
	reboots              int
	starts, stops        int // stopped->pending and running->stopping transitions made
	rebootUntil          time.Time
}

// launch remembers a RunInstances call by its client token.
type launch struct {
	spec RunSpec
	ids  []string
	last map[string]switchboard.Instance // the last view of each, for when one is gone
}

// Validate reports what is wrong with opts, naming the field, including a
// StateFile that exists but cannot be read. New panics on the same problems;
// call Validate first when opts come from a user's file.
func (opts Options) Validate() error {
	_, err := opts.validate()
	return err
}

// validate is Validate that also returns the state file's content, nil when
// there is no file yet.
func (opts Options) validate() (*snapshot, error) {
	var errs []error
	ids := make(map[string]int)
	addrs := make(map[string]string)
	for i, in := range opts.Instances {
		field := fmt.Sprintf("sim: Options.Instances[%d]", i)
		if in.ID != "" && !validID(in.ID) {
			errs = append(errs, fmt.Errorf("%s: id %q is not an EC2 instance id (i- and 8 or 17 lower-case hex digits, like i-0123456789abcdef0)", field, in.ID))
		}
		if j, dup := ids[in.ID]; dup && in.ID != "" {
			errs = append(errs, fmt.Errorf("%s: id %s is already used by Options.Instances[%d]", field, in.ID, j))
		}
		ids[in.ID] = i
		switch in.State {
		case "", switchboard.StatePending, switchboard.StateRunning, switchboard.StateStopping,
			switchboard.StateStopped, switchboard.StateShuttingDown, switchboard.StateTerminated:
		default:
			errs = append(errs, fmt.Errorf("%s: unknown state %q (want one of EC2's: pending, running, stopping, stopped, shutting-down, terminated)", field, in.State))
		}
		if ip := in.PublicIP; ip != "" && in.State != switchboard.StateTerminated {
			if _, err := parseIPv4(ip); err != nil {
				errs = append(errs, fmt.Errorf("%s: public IP %q is not an IPv4 address", field, ip))
			} else if other, dup := addrs[ip]; dup {
				errs = append(errs, fmt.Errorf("%s: public IP %s is already %s's", field, ip, other))
			}
			addrs[ip] = fmt.Sprintf("Options.Instances[%d]", i)
		}
	}
	for i, ip := range opts.ElasticIPs {
		if _, err := parseIPv4(ip); err != nil {
			errs = append(errs, fmt.Errorf("sim: Options.ElasticIPs[%d]: %q is not an IPv4 address", i, ip))
		}
	}
	var saved *snapshot
	if opts.StateFile != "" {
		var err error
		if saved, err = loadState(opts.StateFile); err != nil {
			errs = append(errs, err)
		}
	}
	return saved, errors.Join(errs...)
}

// New returns a simulated cloud holding opts.Instances, or what
// opts.StateFile remembers. It panics when opts.Validate reports a problem.
func New(opts Options) *Cloud {
	saved, err := opts.validate()
	if err != nil {
		panic(err)
	}
	c := &Cloud{
		denied:    slices.Clone(opts.DeniedActions),
		now:       opts.NowFunc,
		latency:   opts.Latency,
		pending:   duration(opts.PendingDuration, DefaultPendingDuration),
		stopping:  duration(opts.StoppingDuration, DefaultStoppingDuration),
		shutting:  duration(opts.ShuttingDownDuration, DefaultShuttingDownDuration),
		reboot:    duration(opts.RebootDuration, DefaultRebootDuration),
		buckets:   opts.Limits.buckets(),
		unlimited: opts.Limits.Unlimited,
		addresses: newAddressBook(opts.ElasticIPs),
		stateFile: opts.StateFile,
		instances: make(map[string]*record),
		launches:  make(map[string]*launch),
		stats:     Stats{Calls: make(map[string]int)},
	}
	if c.now == nil {
		c.now = time.Now
	}
	if saved != nil {
		c.restore(saved)
		c.written = true
	} else {
		now := c.now()
		for _, in := range opts.Instances {
			c.seed(in, now)
		}
	}
	if c.stateFile != "" {
		// A fresh file is written by the first call, which can answer an
		// error; New cannot.
		c.saved, _ = json.MarshalIndent(c.capture(), "", "\t")
	}
	return c
}

func duration(d, def time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d == 0:
		return def
	}
	return d
}

func (c *Cloud) seed(in switchboard.Instance, now time.Time) {
	if in.ID == "" {
		in.ID = c.newID()
	}
	r := &record{Instance: in}
	r.Tags = copyTags(in.Tags)
	if in.Name != "" {
		if r.Tags == nil {
			r.Tags = make(map[string]string)
		}
		if _, ok := r.Tags["Name"]; !ok {
			r.Tags["Name"] = in.Name
		}
	}
	if r.State == "" {
		r.State = switchboard.StateRunning
	}
	switch r.State {
	case switchboard.StatePending:
		r.until = now.Add(c.pending)
	case switchboard.StateStopping:
		r.until = now.Add(c.stopping)
	case switchboard.StateShuttingDown:
		r.until = now.Add(c.shutting)
	case switchboard.StateTerminated:
		r.goneAt = now.Add(TerminatedVisibility)
	}
	if r.Type == "" {
		r.Type = "t3.micro"
	}
	if r.LaunchTime.IsZero() {
		r.LaunchTime = now
	}
	if r.PrivateIP == "" {
		r.PrivateIP = c.nextPrivateIP()
	}
	if ip, _ := parseIPv4(in.PublicIP); ip != "" && r.State != switchboard.StateTerminated {
		if c.addresses.listed(ip) || r.State == switchboard.StateStopped {
			r.elasticIP = ip
			c.addresses.holder[ip] = in.ID
		} else {
			r.autoIP = ip
			c.addresses.take(ip, in.ID)
		}
	}
	c.refreshAddress(r)
	c.instances[r.ID] = r
}

// newID returns an unused id in EC2's long form: "i-0" and 16 hex digits.
func (c *Cloud) newID() string {
	for {
		id := fmt.Sprintf("i-0%016x", rand.Uint64())
		if _, taken := c.instances[id]; !taken {
			return id
		}
	}
}

// nextPrivateIP hands out addresses from the default VPC's 172.31.0.0/16.
func (c *Cloud) nextPrivateIP() string {
	n := c.privateN
	c.privateN++
	return fmt.Sprintf("172.31.%d.%d", (n/250)%256, n%250+4)
}

var (
	instanceIDPattern = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
	imageIDPattern    = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)
)

func validID(id string) bool { return instanceIDPattern.MatchString(id) }

// settle moves r along its lifecycle to where it is at now, and reports
// whether it has left the account (terminated for longer than an hour).
func (c *Cloud) settle(r *record, now time.Time) (gone bool) {
	switch r.State {
	case switchboard.StatePending:
		if !now.Before(r.until) {
			r.State = switchboard.StateRunning
		}
	case switchboard.StateStopping:
		if !now.Before(r.until) {
			r.State = switchboard.StateStopped
		}
	case switchboard.StateShuttingDown:
		if !now.Before(r.until) {
			r.State = switchboard.StateTerminated
			r.goneAt = r.until.Add(TerminatedVisibility)
		}
	}
	if !r.rebootUntil.IsZero() && (r.State != switchboard.StateRunning || !now.Before(r.rebootUntil)) {
		r.rebootUntil = time.Time{}
	}
	c.refreshAddress(r)
	return r.State == switchboard.StateTerminated && !now.Before(r.goneAt)
}

// refreshAddress keeps r's public addresses in line with its state: an
// instance without an Elastic IP has an auto-assigned address while running
// or stopping and none otherwise; a terminated instance lets go of its
// Elastic IP too.
func (c *Cloud) refreshAddress(r *record) {
	if r.State == switchboard.StateTerminated && r.elasticIP != "" {
		c.addresses.release(r.elasticIP)
		r.elasticIP = ""
	}
	wantsAuto := r.elasticIP == "" && (r.State == switchboard.StateRunning || r.State == switchboard.StateStopping)
	switch {
	case wantsAuto && r.autoIP == "":
		r.autoIP = c.addresses.assign(r.ID)
	case !wantsAuto && r.autoIP != "":
		c.addresses.release(r.autoIP)
		r.autoIP = ""
	}
}

func (r *record) view() switchboard.Instance {
	in := r.Instance
	in.Tags = copyTags(r.Tags)
	in.Name = r.Tags["Name"]
	in.PublicIP = r.elasticIP
	if in.PublicIP == "" {
		in.PublicIP = r.autoIP
	}
	if in.PrivateIP != "" && in.PrivateDNS == "" {
		// As EC2 names a default VPC's instances.
		in.PrivateDNS = "ip-" + strings.ReplaceAll(in.PrivateIP, ".", "-") + ".ec2.internal"
	}
	return in
}

func (r *record) detail() Detail {
	return Detail{
		Instance:    r.view(),
		ImageID:     r.imageID,
		UserData:    r.userData,
		ClientToken: r.clientToken,
		ElasticIP:   r.elasticIP,
		Reboots:     r.reboots,
		Starts:      r.starts,
		Stops:       r.stops,
		Rebooting:   !r.rebootUntil.IsZero(),
	}
}

func copyTags(tags map[string]string) map[string]string { return maps.Clone(tags) }

// begin is the start of every API call: the round trip, then the call is
// counted and, under c.mu, checked against its token bucket. The caller
// holds c.mu when begin returns nil and must call end.
func (c *Cloud) begin(ctx context.Context, action string) (time.Time, error) {
	if err := c.wait(ctx); err != nil {
		c.mu.Lock()
		c.stats.Calls[action]++
		c.stats.Failed++
		c.mu.Unlock()
		return time.Time{}, fmt.Errorf("sim %s: %w", action, err)
	}
	c.mu.Lock()
	c.stats.Calls[action]++
	now := c.now()
	if !c.buckets[action].allow(now) {
		c.stats.Throttled++
		c.stats.Failed++
		c.mu.Unlock()
		return time.Time{}, errThrottled()
	}
	return now, nil
}

// end saves what the call changed, releases c.mu and counts a failed call.
// It returns err, or the save's error when the call itself succeeded.
func (c *Cloud) end(err error) error {
	if serr := c.save(); err == nil {
		err = serr
	}
	if err != nil {
		c.stats.Failed++
	}
	c.mu.Unlock()
	return err
}

func (c *Cloud) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil || c.latency <= 0 {
		return err
	}
	t := time.NewTimer(c.latency)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// resolve checks ids the way EC2 does before acting: the batch size, then
// every id's form, then that every instance exists. It returns the records
// in the order asked, each once, settled at now.
func (c *Cloud) resolve(ids []string, now time.Time) ([]*record, error) {
	if len(ids) > maxIDs {
		return nil, errTooManyIDs(len(ids))
	}
	var malformed, missing []string
	seen := make(map[string]bool, len(ids))
	records := make([]*record, 0, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if !validID(id) {
			malformed = append(malformed, id)
			continue
		}
		r, ok := c.instances[id]
		if ok && c.settle(r, now) {
			c.forget(r)
			ok = false
		}
		if !ok {
			missing = append(missing, id)
			continue
		}
		records = append(records, r)
	}
	if len(malformed) > 0 {
		return nil, errMalformed(malformed)
	}
	if len(missing) > 0 {
		return nil, errNotFound(missing)
	}
	return records, nil
}

// settleAll settles every instance at now and returns those still in the
// account, sorted by id. Settling in id order rather than map order makes
// the auto-assigned addresses of instances that finish booting together the
// same every time, so a cloud reloaded from its StateFile hands out the ones
// it would have without the reload.
func (c *Cloud) settleAll(now time.Time) []*record {
	records := slices.SortedFunc(maps.Values(c.instances), func(a, b *record) int { return strings.Compare(a.ID, b.ID) })
	live := records[:0]
	for _, r := range records {
		if c.settle(r, now) {
			c.forget(r)
			continue
		}
		live = append(live, r)
	}
	return live
}

// forget removes an instance that has left the account, keeping its last
// view for the client token that launched it.
func (c *Cloud) forget(r *record) {
	delete(c.instances, r.ID)
	if l, ok := c.launches[r.clientToken]; ok && r.clientToken != "" {
		l.last[r.ID] = r.view()
	}
}

// DescribeInstances returns the instances that match f, sorted by id. Naming
// an id that does not exist fails the call with InvalidInstanceID.NotFound,
// as on EC2. Tag values may use EC2's wildcards: * and ?.
func (c *Cloud) DescribeInstances(ctx context.Context, f switchboard.Filter) (res []switchboard.Instance, err error) {
	const action = "DescribeInstances"
	now, err := c.begin(ctx, action)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err = c.end(err); err != nil {
			res = nil // the call failed as a whole
		}
	}()

	var candidates []*record
	if len(f.IDs) > 0 {
		if candidates, err = c.resolve(f.IDs, now); err != nil {
			return nil, err
		}
		// Sorting the records rather than the views moves pointers, not structs.
		slices.SortFunc(candidates, func(a, b *record) int { return strings.Compare(a.ID, b.ID) })
	} else {
		candidates = c.settleAll(now)
	}
	var out []switchboard.Instance
	var touched []string
	for _, r := range candidates {
		if matchTags(f.Tags, r.Tags) {
			out = append(out, r.view())
			touched = append(touched, r.ID)
		}
	}
	if fl := c.takeFault(action, touched); fl != nil {
		return nil, fl.error(touched)
	}
	return out, nil
}

// StartInstances starts stopped instances. Pending and running ones are
// left as they are and reported unchanged; any other state fails the whole
// call with IncorrectInstanceState.
func (c *Cloud) StartInstances(ctx context.Context, ids []string) ([]switchboard.StateChange, error) {
	refuse := func(rs []*record) []string {
		return inStates(rs, switchboard.StateStopping, switchboard.StateShuttingDown, switchboard.StateTerminated)
	}
	return c.mutate(ctx, "StartInstances", ids, refuse, "can be started", func(r *record, now time.Time) {
		if r.State == switchboard.StateStopped {
			r.starts++
			r.State = switchboard.StatePending
			r.until = now.Add(c.pending)
			r.LaunchTime = now
		}
	})
}

// StopInstances stops running instances. Stopped and stopping ones are
// reported unchanged; pending, shutting-down and terminated ones fail the
// whole call with IncorrectInstanceState. Force and Hibernate do not change
// the simulation: every stop takes StoppingDuration.
func (c *Cloud) StopInstances(ctx context.Context, ids []string, _ switchboard.StopOptions) ([]switchboard.StateChange, error) {
	refuse := func(rs []*record) []string {
		return inStates(rs, switchboard.StatePending, switchboard.StateShuttingDown, switchboard.StateTerminated)
	}
	return c.mutate(ctx, "StopInstances", ids, refuse, "can be stopped", func(r *record, now time.Time) {
		if r.State == switchboard.StateRunning {
			r.stops++
			r.State = switchboard.StateStopping
			r.until = now.Add(c.stopping)
			r.rebootUntil = time.Time{}
		}
	})
}

// RebootInstances reboots running instances. As on EC2 they stay running
// throughout; Detail.Rebooting shows the reboot. Any instance that is not
// running fails the whole call with IncorrectInstanceState.
func (c *Cloud) RebootInstances(ctx context.Context, ids []string) error {
	refuse := func(rs []*record) []string { return notInState(rs, switchboard.StateRunning) }
	_, err := c.mutate(ctx, "RebootInstances", ids, refuse, "can be rebooted", func(r *record, now time.Time) {
		r.reboots++
		r.rebootUntil = now.Add(c.reboot)
		if c.reboot == 0 {
			// An instant reboot is over before anyone can look.
			r.rebootUntil = time.Time{}
		}
	})
	return err
}

// TerminateInstances terminates instances in any state: they go through
// shutting-down to terminated, and stay visible for TerminatedVisibility.
// Instances already on the way are reported unchanged.
func (c *Cloud) TerminateInstances(ctx context.Context, ids []string) ([]switchboard.StateChange, error) {
	return c.mutate(ctx, "TerminateInstances", ids, nil, "", func(r *record, now time.Time) {
		if r.State != switchboard.StateShuttingDown && r.State != switchboard.StateTerminated {
			r.State = switchboard.StateShuttingDown
			r.until = now.Add(c.shutting)
			r.rebootUntil = time.Time{}
		}
	})
}

// mutate is the shape of every state-changing call: the call's round trip
// and token, the ids resolved, a refusal with IncorrectInstanceState when
// refuse names instances in a state the call cannot act on ("what" ends the
// message: "can be started"), then apply to every instance.
func (c *Cloud) mutate(ctx context.Context, action string, ids []string, refuse func([]*record) []string, what string,
	apply func(r *record, now time.Time)) (res []switchboard.StateChange, err error) {
	now, err := c.begin(ctx, action)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err = c.end(err); err != nil {
			res = nil // the call failed as a whole
		}
	}()
	records, err := c.targets(ids, now)
	if err != nil {
		return nil, err
	}
	if refuse != nil {
		if bad := refuse(records); len(bad) > 0 {
			return nil, errIncorrectState(bad, what)
		}
	}
	return c.change(action, records, func(r *record) { apply(r, now) }, now)
}

// targets resolves the ids of a state-changing call, which EC2 requires.
func (c *Cloud) targets(ids []string, now time.Time) ([]*record, error) {
	if len(ids) == 0 {
		return nil, switchboard.MissingParameter("InstanceId")
	}
	return c.resolve(ids, now)
}

// change applies apply to every record unless an injected fault says the
// call fails first, and reports each record's state before and after.
func (c *Cloud) change(action string, records []*record, apply func(*record), now time.Time) ([]switchboard.StateChange, error) {
	ids := make([]string, len(records))
	for i, r := range records {
		ids[i] = r.ID
	}
	fl := c.takeFault(action, ids)
	if fl != nil && !fl.Applied {
		return nil, fl.error(ids)
	}
	changes := make([]switchboard.StateChange, len(records))
	for i, r := range records {
		prev := r.State
		apply(r)
		c.refreshAddress(r)
		changes[i] = switchboard.StateChange{ID: r.ID, Previous: prev, Current: r.State}
	}
	if fl != nil {
		return nil, fl.error(ids)
	}
	return changes, nil
}

func inStates(records []*record, states ...switchboard.InstanceState) []string {
	var ids []string
	for _, r := range records {
		if slices.Contains(states, r.State) {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

func notInState(records []*record, state switchboard.InstanceState) []string {
	var ids []string
	for _, r := range records {
		if r.State != state {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// AssociateAddress attaches the Elastic IP publicIP to an instance, taking it
// off whichever instance had it (which gets an auto-assigned address back if
// it is running). The Elastic IP replaces the instance's auto-assigned
// address and stays through stops and starts until the instance terminates.
func (c *Cloud) AssociateAddress(ctx context.Context, instanceID, publicIP string) (err error) {
	const action = "AssociateAddress"
	now, err := c.begin(ctx, action)
	if err != nil {
		return err
	}
	defer func() { err = c.end(err) }()

	if instanceID == "" {
		return switchboard.MissingParameter("InstanceId")
	}
	records, err := c.resolve([]string{instanceID}, now)
	if err != nil {
		return err
	}
	r := records[0]
	ip, err := parseIPv4(publicIP)
	if err != nil {
		return err
	}
	if !c.addresses.owns(ip) || c.addresses.auto[ip] {
		return errAddressNotFound(ip)
	}
	if r.State == switchboard.StateShuttingDown || r.State == switchboard.StateTerminated {
		return errIncorrectStateFor(r.ID)
	}
	fl := c.takeFault(action, []string{r.ID})
	if fl != nil && !fl.Applied {
		return fl.error([]string{r.ID})
	}
	if r.elasticIP != ip {
		if holderID, ok := c.addresses.holder[ip]; ok {
			if holder := c.instances[holderID]; holder != nil {
				holder.elasticIP = ""
				c.refreshAddress(holder)
			}
		}
		if r.elasticIP != "" {
			c.addresses.release(r.elasticIP)
		}
		r.elasticIP = ip
		c.addresses.holder[ip] = r.ID
		c.refreshAddress(r)
	}
	if fl != nil {
		return fl.error([]string{r.ID})
	}
	return nil
}

// RunInstances launches Count instances from an image. They start pending
// and become running after PendingDuration, with an auto-assigned public
// address. A repeated ClientToken returns the first call's instances as they
// are now.
func (c *Cloud) RunInstances(ctx context.Context, spec RunSpec) (res []switchboard.Instance, err error) {
	const action = "RunInstances"
	now, err := c.begin(ctx, action)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err = c.end(err); err != nil {
			res = nil // the call failed as a whole
		}
	}()

	if spec.Count == 0 {
		spec.Count = 1
	}
	if spec.Type == "" {
		spec.Type = "t3.micro"
	}
	if err := validateRunSpec(spec); err != nil {
		return nil, err
	}
	if spec.ClientToken != "" {
		if l, ok := c.launches[spec.ClientToken]; ok {
			if !sameSpec(l.spec, spec) {
				return nil, errIdempotentMismatch(spec.ClientToken)
			}
			return c.replay(l, now), nil
		}
	}
	fl := c.takeFault(action, nil)
	if fl != nil && !fl.Applied {
		return nil, fl.error(nil)
	}
	out := make([]switchboard.Instance, spec.Count)
	ids := make([]string, spec.Count)
	for i := range out {
		r := &record{
			Instance: switchboard.Instance{
				ID:         c.newID(),
				State:      switchboard.StatePending,
				Type:       spec.Type,
				PrivateIP:  c.nextPrivateIP(),
				Tags:       copyTags(spec.Tags),
				LaunchTime: now,
			},
			until:       now.Add(c.pending),
			imageID:     spec.ImageID,
			userData:    spec.UserData,
			clientToken: spec.ClientToken,
		}
		c.instances[r.ID] = r
		out[i] = r.view()
		ids[i] = r.ID
	}
	if spec.ClientToken != "" {
		spec.Tags = copyTags(spec.Tags)
		c.launches[spec.ClientToken] = &launch{spec: spec, ids: ids, last: make(map[string]switchboard.Instance)}
	}
	if fl != nil {
		return nil, fl.error(ids)
	}
	return out, nil
}

func validateRunSpec(spec RunSpec) error {
	switch {
	case spec.ImageID == "":
		return switchboard.MissingParameter("ImageId")
	case !imageIDPattern.MatchString(spec.ImageID):
		return errImageMalformed(spec.ImageID)
	case spec.Count < 0 || spec.Count > maxIDs:
		return switchboard.InvalidParameterValue("count", fmt.Sprint(spec.Count), fmt.Sprintf("Launch between 1 and %d instances per request.", maxIDs))
	case len(spec.UserData) > 16*1024:
		return switchboard.InvalidParameterValue("userData", fmt.Sprintf("%d bytes", len(spec.UserData)), "User data is limited to 16384 bytes.")
	case len(spec.ClientToken) > 64:
		return switchboard.InvalidParameterValue("clientToken", spec.ClientToken, "A client token is at most 64 ASCII characters.")
	}
	return nil
}

func sameSpec(a, b RunSpec) bool {
	if a.ImageID != b.ImageID || a.Type != b.Type || a.Count != b.Count || a.UserData != b.UserData || len(a.Tags) != len(b.Tags) {
		return false
	}
	for k, v := range a.Tags {
		if w, ok := b.Tags[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// replay answers a repeated client token with the launched instances as they
// are now, or as last seen for those that have left the account.
func (c *Cloud) replay(l *launch, now time.Time) []switchboard.Instance {
	out := make([]switchboard.Instance, 0, len(l.ids))
	for _, id := range l.ids {
		r, ok := c.instances[id]
		if ok && c.settle(r, now) {
			c.forget(r)
			ok = false
		}
		if ok {
			out = append(out, r.view())
		} else {
			out = append(out, l.last[id])
		}
	}
	return out
}

// Instance returns everything the cloud knows about one instance, without
// counting a call or spending a token. ok is false when there is no such
// instance (any more).
func (c *Cloud) Instance(id string) (d Detail, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A look settles instances, which a StateFile must remember like any
	// change. A failed save puts the last saved state back; the next look
	// settles it again.
	defer func() { _ = c.save() }()
	r, ok := c.instances[id]
	if !ok {
		return Detail{}, false
	}
	if c.settle(r, c.now()) {
		c.forget(r)
		return Detail{}, false
	}
	return r.detail(), true
}

// Instances returns every instance in the account, sorted by id, without
// counting a call or spending a token.
func (c *Cloud) Instances() []Detail {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() { _ = c.save() }() // as in Instance
	records := c.settleAll(c.now())
	out := make([]Detail, len(records))
	for i, r := range records {
		out[i] = r.detail()
	}
	return out
}
