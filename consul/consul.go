// Package consul cleans up after an instance that is gone: it destroys the
// Consul sessions of its node, which releases or deletes the KV locks they
// held (each by its session's behavior), then deregisters the node with its
// services and checks from the catalog, and declares the consul_deregister
// workflow step that does it (hashicorp/consul/api).
//
// Cleanup is idempotent: a node that is not registered and a session that
// is gone count as already cleaned up, so a second run, or a retry after a
// failure half way, succeeds.
//
// It cleans up the catalog, the sessions and their locks, not gossip
// membership: when the dead instance ran a Consul agent, Consul's leader
// keeps a failed member's node registered (with serfHealth critical, which
// invalidates its sessions anyway) until the member is reaped or told to
// leave (consul force-leave), and may register it again after Cleanup.
package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchboardhq/switchboard"
)

// Options say which Consul to talk to, and with which token.
type Options struct {
	// Address is the HTTP API of a Consul agent or server: 127.0.0.1:8500,
	// http://consul.internal:8500 or https://consul.internal:8501.
	Address string
	// Token is the ACL token (its secret ID) sent with every request. It
	// needs node:write on the nodes it cleans up, session:write, and
	// key:read on LockPrefixes to report the locks. It is a secret: never
	// logged nor put in an error. Empty means no token, unless the
	// environment sets CONSUL_HTTP_TOKEN, as for every Consul client.
	Token string
	// Datacenter is the datacenter to clean up in; empty means the agent's.
	Datacenter string
	// LockPrefixes are the KV prefixes searched for the keys a node's
	// sessions hold, to report them. Default: the whole KV store, which
	// is fine for a small one; name the prefixes locks live under (like
	// "locks/" and "service/") for a large one.
	LockPrefixes []string
	// Timeout bounds one Cleanup; default 30s.
	Timeout time.Duration
	// InstanceMeta is the node meta key that holds a node's instance id,
	// for Holdings; default DefaultInstanceMeta.
	InstanceMeta string
	// NodeName says how node names carry the instance, for Holdings: a
	// template of {{id}} (the instance id) and {{name}} (its Name tag),
	// like "{{id}}" or "{{name}}.node". Empty: a node name is the
	// instance's name.
	NodeName string
}

// WithDefaults returns the options with every unset default filled in.
func (o Options) WithDefaults() Options {
	if len(o.LockPrefixes) == 0 {
		o.LockPrefixes = []string{""}
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.InstanceMeta == "" {
		o.InstanceMeta = DefaultInstanceMeta
	}
	return o
}

// Validate reports the first option that is wrong, by name, and how to fix
// it.
func (o Options) Validate() error {
	if o.Address == "" {
		return errors.New("consul: address is missing: Consul's HTTP API, like 127.0.0.1:8500 or https://consul.internal:8501")
	}
	if scheme, rest, ok := strings.Cut(o.Address, "://"); ok {
		u, err := url.Parse(o.Address)
		switch {
		case err == nil && u.User != nil:
			return errors.New("consul: address must not hold a user or password; set token instead")
		case scheme != "http" && scheme != "https":
			return fmt.Errorf("consul: address %q: the scheme is http or https", o.Address)
		case err != nil || u.Host == "" || rest == "":
			return fmt.Errorf("consul: address %q is not a URL like https://consul.internal:8501", o.Address)
		}
	} else if _, _, err := net.SplitHostPort(o.Address); err != nil {
		return fmt.Errorf("consul: address %q is not HOST:PORT, like 127.0.0.1:8500", o.Address)
	}
	if strings.ContainsAny(o.Token, " \t\r\n") {
		return errors.New("consul: token holds white space; it is the token's secret ID, a UUID")
	}
	if strings.ContainsAny(o.Datacenter, "/?&# ") {
		return fmt.Errorf("consul: datacenter %q is not a datacenter name, like dc1", o.Datacenter)
	}
	if strings.ContainsAny(o.InstanceMeta, " \t\r\n") {
		return fmt.Errorf("consul: instance_meta %q is not a node meta key, like instance_id", o.InstanceMeta)
	}
	_, err := compileNodeName(o.NodeName)
	return err
}

// nodeName is a node name Cleanup accepts: a host name, in the main.
var nodeName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// Client cleans up nodes in one Consul datacenter.
type Client struct {
	api      *api.Client
	opts     Options
	nodeName *nodeTemplate
	// where names Consul in errors.
	where string
}

// New returns a client for the Consul the options name.
func New(opts Options) (*Client, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	c, err := api.NewClient(&api.Config{Address: opts.Address, Token: opts.Token, Datacenter: opts.Datacenter})
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	nodeName, _ := compileNodeName(opts.NodeName) // checked by Validate
	return &Client{api: c, opts: opts, nodeName: nodeName, where: "Consul at " + opts.Address}, nil
}

// Result is what Cleanup did, or would do in a dry run. After an error it
// holds what was done before it.
type Result struct {
	Node   string
	DryRun bool
	// Deregistered is set when the node was in the catalog and is no more.
	Deregistered bool
	// Services and Checks are the ids of the services and checks that
	// went with the node, sorted.
	Services []string
	Checks   []string
	// Sessions are the ids of the node's sessions that were destroyed,
	// sorted.
	Sessions []string
	// Locks are the KV keys those sessions held, sorted by key.
	Locks []Lock
}

// Lock is a KV key a destroyed session held.
type Lock struct {
	Key     string
	Session string
	// Deleted is set when the session's behavior was "delete": the key is
	// gone. Otherwise ("release") the key stays, unlocked.
	Deleted bool
}

// String is the key and what happened to it: "locks/web (released)".
func (l Lock) String() string {
	if l.Deleted {
		return l.Key + " (deleted)"
	}
	return l.Key + " (released)"
}

// Summary says what the result removed, for a channel report: "Consul node
// and 1 session (released locks/web)", "" when nothing was there.
func (r Result) Summary() string {
	var s string
	n := len(r.Sessions)
	sessions := fmt.Sprintf("%d session", n)
	if n != 1 {
		sessions += "s"
	}
	switch {
	case r.Deregistered && n > 0:
		s = "Consul node and " + sessions
	case r.Deregistered:
		s = "Consul node"
	case n > 0:
		s = fmt.Sprintf("%d Consul session", n)
		if n != 1 {
			s += "s"
		}
	default:
		// A report lists every system: nothing is said as such.
		return "no Consul node"
	}
	var released, deleted []string
	for _, l := range r.Locks {
		if l.Deleted {
			deleted = append(deleted, l.Key)
		} else {
			released = append(released, l.Key)
		}
	}
	var locks []string
	if len(released) > 0 {
		locks = append(locks, "released "+strings.Join(released, ", "))
	}
	if len(deleted) > 0 {
		locks = append(locks, "deleted "+strings.Join(deleted, ", "))
	}
	if len(locks) > 0 {
		s += " (" + strings.Join(locks, "; ") + ")"
	}
	if r.DryRun {
		s = "would remove " + s
	}
	return s
}

// Cleanup destroys the sessions of node and deregisters it, with its
// services and checks. Destroying a session first releases or deletes the
// keys it holds (by its behavior) and lets Consul apply its lock delay,
// just as when the node's health check fails; the result says which keys.
// A node that is not registered and sessions already gone are success. In
// a dry run it changes nothing and reports what it would do.
func (c *Client) Cleanup(ctx context.Context, node string, dryRun bool) (Result, error) {
	res := Result{Node: node, DryRun: dryRun}
	if node == "" {
		return res, switchboard.Errorf(switchboard.EINVALID, "Which Consul node? The node name is empty.")
	}
	// The client puts the name into request paths unescaped: "../x" or
	// "a?b" would name something else.
	if !nodeName.MatchString(node) {
		return res, switchboard.Errorf(switchboard.EINVALID, "%q is not a Consul node name (letters, digits, '_', '.' and '-'), so nothing was changed.", node)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	q := (&api.QueryOptions{}).WithContext(ctx)
	w := (&api.WriteOptions{}).WithContext(ctx)

	cn, qm, err := c.api.Catalog().Node(node, q)
	if err == nil && qm.ResultsFilteredByACLs {
		err = errHidden
	}
	if err != nil {
		return res, c.fail(ctx, err, "read node "+node)
	}
	checks, qm, err := c.api.Health().Node(node, q)
	if err == nil && qm.ResultsFilteredByACLs {
		err = errHidden
	}
	if err != nil {
		return res, c.fail(ctx, err, "read the checks of node "+node)
	}
	sessions, qm, err := c.api.Session().Node(node, q)
	if err == nil && qm.ResultsFilteredByACLs {
		err = errHidden
	}
	if err != nil {
		return res, c.fail(ctx, err, "read the sessions of node "+node)
	}
	locks, err := c.heldLocks(ctx, sessions)
	if err != nil {
		return res, err
	}

	// Sessions first, so each releases its locks by its own behavior and
	// the result can say so; deregistering the node would destroy them
	// too.
	slices.SortFunc(sessions, func(a, b *api.SessionEntry) int { return strings.Compare(a.ID, b.ID) })
	for _, s := range sessions {
		if !dryRun {
			if _, err := c.api.Session().Destroy(s.ID, w); err != nil {
				return res, c.fail(ctx, err, "destroy session "+s.ID+" of node "+node)
			}
		}
		res.Sessions = append(res.Sessions, s.ID)
		for _, l := range locks {
			if l.Session == s.ID {
				res.Locks = append(res.Locks, l)
			}
		}
	}
	slices.SortFunc(res.Locks, func(a, b Lock) int { return strings.Compare(a.Key, b.Key) })

	if cn != nil && cn.Node != nil {
		if !dryRun {
			_, err := c.api.Catalog().Deregister(&api.CatalogDeregistration{Node: node, Datacenter: c.opts.Datacenter}, w)
			if err != nil {
				return res, c.fail(ctx, err, "deregister node "+node)
			}
		}
		res.Deregistered = true
		for id := range cn.Services {
			res.Services = append(res.Services, id)
		}
		slices.Sort(res.Services)
		for _, ch := range checks {
			res.Checks = append(res.Checks, ch.CheckID)
		}
		slices.Sort(res.Checks)
	}
	return res, nil
}

// heldLocks finds the keys the sessions hold under LockPrefixes. Consul has
// no index from a session to its keys in its API, so it reads the keys.
func (c *Client) heldLocks(ctx context.Context, sessions []*api.SessionEntry) ([]Lock, error) {
	if len(sessions) == 0 {
		return nil, nil
	}
	behavior := map[string]string{}
	for _, s := range sessions {
		behavior[s.ID] = s.Behavior
	}
	q := (&api.QueryOptions{}).WithContext(ctx)
	var locks []Lock
	seen := map[string]bool{}
	for _, prefix := range c.opts.LockPrefixes {
		pairs, _, err := c.api.KV().List(prefix, q)
		if err != nil {
			what := "read the KV store"
			if prefix != "" {
				what = "read the keys under " + prefix
			}
			return nil, c.fail(ctx, err, what)
		}
		for _, p := range pairs {
			b, ok := behavior[p.Session]
			if !ok || seen[p.Key] {
				continue
			}
			seen[p.Key] = true
			locks = append(locks, Lock{Key: p.Key, Session: p.Session, Deleted: b == api.SessionBehaviorDelete})
		}
	}
	return locks, nil
}
