package consul_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/consul"
	"github.com/switchboardhq/switchboard/consul/consultest"
	"github.com/switchboardhq/switchboard/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The suite runs against the local stand-in always, and against a real
// Consul when there is one: what it asserts is Consul's behavior, which the
// stand-in must have too.

func TestSuiteConsultest(t *testing.T) {
	t.Parallel()
	srv := consultest.New(t, consultest.Options{Token: "2b8e3f1c-5d6a-4e7b-9c0d-1e2f3a4b5c6d"})
	runSuite(t, peer{addr: srv.Addr, token: "2b8e3f1c-5d6a-4e7b-9c0d-1e2f3a4b5c6d"})
}

func TestSuiteConsulAgent(t *testing.T) {
	t.Parallel()
	a := testenv.Consul(t)
	runSuite(t, peer{addr: a.Addr, token: a.Token})
}

// peer is a Consul with ACLs on; token is a management token.
type peer struct {
	addr, token string
}

func runSuite(t *testing.T, p peer) {
	t.Run("Holdings", func(t *testing.T) {
		t.Parallel()
		n := nodeSeq.Add(1)
		byMeta, byName := fmt.Sprintf("web-%d", n), fmt.Sprintf("i-0abc%013d", n)
		admin := p.admin(t)
		for _, reg := range []*api.CatalogRegistration{
			{Node: byMeta, Address: "10.0.0.7", NodeMeta: map[string]string{"instance_id": "i-0def1234567890abc"}},
			{Node: byName, Address: "10.0.0.8"},
		} {
			if _, err := admin.Catalog().Register(reg, nil); err != nil {
				t.Fatalf("register %s: %v", reg.Node, err)
			}
		}
		find := func(c *consul.Client, node string) switchboard.Holding {
			t.Helper()
			hs, err := c.Holdings(context.Background())
			if err != nil {
				t.Fatalf("Holdings: %v", err)
			}
			for _, h := range hs {
				if h.Name == node || h.Item == "node "+node {
					return h
				}
			}
			t.Fatalf("Holdings has no node %s: %+v", node, hs)
			return switchboard.Holding{}
		}
		c := p.client(t, p.token, "")
		if h := find(c, byMeta); h.Instance != "i-0def1234567890abc" || h.Item != "node "+byMeta || !slices.Equal(h.Addresses, []string{"10.0.0.7"}) {
			t.Errorf("the node with instance_id meta: %+v", h)
		}
		if h := find(c, byName); h.Instance != "" || h.System != "Consul" {
			t.Errorf("a node without meta, and no node_name: %+v", h)
		}
		templated, err := consul.New(consul.Options{Address: p.addr, Token: p.token, NodeName: "{{id}}"})
		if err != nil {
			t.Fatal(err)
		}
		if h := find(templated, byName); h.Instance != byName {
			t.Errorf("with node_name {{id}}: %+v", h)
		}
	})
	t.Run("Cleanup", func(t *testing.T) {
		t.Parallel()
		f := p.seed(t)
		c := p.client(t, p.token, "")

		res, err := c.Cleanup(context.Background(), f.node, false)
		if err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		want := consul.Result{
			Node: f.node, Deregistered: true,
			Services: []string{"web", "web-admin"},
			Checks:   []string{"mem", "service:web-admin"},
			Sessions: sorted(f.releaseSession, f.deleteSession),
			Locks: []consul.Lock{
				{Key: f.deleteKey, Session: f.deleteSession, Deleted: true},
				{Key: f.releaseKey, Session: f.releaseSession},
			},
		}
		if !equal(res, want) {
			t.Errorf("Cleanup =\n%+v\nwant\n%+v", res, want)
		}
		if got, want := res.Summary(), fmt.Sprintf("Consul node and 2 sessions (released %s; deleted %s)", f.releaseKey, f.deleteKey); got != want {
			t.Errorf("Summary() = %q, want %q", got, want)
		}

		admin := p.admin(t)
		if n, _, err := admin.Catalog().Node(f.node, nil); err != nil || n != nil {
			t.Errorf("the node is still registered: %+v, %v", n, err)
		}
		if checks, _, err := admin.Health().Node(f.node, nil); err != nil || len(checks) != 0 {
			t.Errorf("the node's checks are still there: %v, %v", checks, err)
		}
		if ss, _, err := admin.Session().Node(f.node, nil); err != nil || len(ss) != 0 {
			t.Errorf("the node's sessions are still there: %v, %v", ss, err)
		}
		// The release session's key stays, unlocked; the delete session's
		// is gone.
		if kv, _, err := admin.KV().Get(f.releaseKey, nil); err != nil || kv == nil || kv.Session != "" || string(kv.Value) != f.node {
			t.Errorf("%s = %+v, %v; want it there with its value and no session", f.releaseKey, kv, err)
		}
		if kv, _, err := admin.KV().Get(f.deleteKey, nil); err != nil || kv != nil {
			t.Errorf("%s = %+v, %v; want it deleted", f.deleteKey, kv, err)
		}
		// The released lock waits out its session's lock delay before
		// another session may take it.
		if ok, _, err := admin.KV().Acquire(&api.KVPair{Key: f.releaseKey, Session: f.otherSession}, nil); err != nil || ok {
			t.Errorf("acquire %s right after the cleanup = %v, %v; want false (lock delay)", f.releaseKey, ok, err)
		}
		// Another node's lock, and the node, are untouched.
		if kv, _, err := admin.KV().Get(f.otherKey, nil); err != nil || kv == nil || kv.Session != f.otherSession {
			t.Errorf("%s = %+v, %v; want it still held by the other node's session", f.otherKey, kv, err)
		}
		if n, _, err := admin.Catalog().Node(f.other, nil); err != nil || n == nil {
			t.Errorf("the other node is gone: %v", err)
		}
	})

	t.Run("SecondRunIsANoOp", func(t *testing.T) {
		t.Parallel()
		f := p.seed(t)
		c := p.client(t, p.token, "")
		if _, err := c.Cleanup(context.Background(), f.node, false); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		res, err := c.Cleanup(context.Background(), f.node, false)
		if err != nil {
			t.Fatalf("second Cleanup: %v", err)
		}
		if want := (consul.Result{Node: f.node}); !equal(res, want) {
			t.Errorf("second Cleanup = %+v, want %+v", res, want)
		}
		if res.Summary() != "no Consul node" {
			t.Errorf("Summary() = %q, want nothing", res.Summary())
		}
		// A node that never was is the same.
		if res, err := c.Cleanup(context.Background(), "never-"+f.node, false); err != nil || res.Deregistered || len(res.Sessions) > 0 {
			t.Errorf("Cleanup of an unknown node = %+v, %v", res, err)
		}
	})

	t.Run("DryRun", func(t *testing.T) {
		t.Parallel()
		f := p.seed(t)
		c := p.client(t, p.token, "")
		res, err := c.Cleanup(context.Background(), f.node, true)
		if err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		if !res.DryRun || !res.Deregistered || !slices.Equal(res.Sessions, sorted(f.releaseSession, f.deleteSession)) || len(res.Locks) != 2 {
			t.Errorf("dry run = %+v; want what a cleanup would do", res)
		}
		if !strings.HasPrefix(res.Summary(), "would remove ") {
			t.Errorf("Summary() = %q, want it to say it was a dry run", res.Summary())
		}
		admin := p.admin(t)
		if n, _, err := admin.Catalog().Node(f.node, nil); err != nil || n == nil || len(n.Services) != 2 {
			t.Errorf("a dry run changed the node: %+v, %v", n, err)
		}
		if ss, _, err := admin.Session().Node(f.node, nil); err != nil || len(ss) != 2 {
			t.Errorf("a dry run destroyed sessions: %v, %v", ss, err)
		}
		for key, session := range map[string]string{f.releaseKey: f.releaseSession, f.deleteKey: f.deleteSession} {
			if kv, _, err := admin.KV().Get(key, nil); err != nil || kv == nil || kv.Session != session {
				t.Errorf("a dry run changed %s: %+v, %v", key, kv, err)
			}
		}
	})

	t.Run("LockPrefixes", func(t *testing.T) {
		t.Parallel()
		f := p.seed(t)
		// Only the release key is under the prefix: only it is reported,
		// while both are released or deleted all the same.
		c := p.client(t, p.token, "", f.releaseKey)
		res, err := c.Cleanup(context.Background(), f.node, false)
		if err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		if want := []consul.Lock{{Key: f.releaseKey, Session: f.releaseSession}}; !slices.Equal(res.Locks, want) {
			t.Errorf("locks %v, want %v", res.Locks, want)
		}
		if kv, _, err := p.admin(t).KV().Get(f.deleteKey, nil); err != nil || kv != nil {
			t.Errorf("%s = %+v, %v; want it deleted", f.deleteKey, kv, err)
		}
	})

	t.Run("WrongToken", func(t *testing.T) {
		t.Parallel()
		f := p.seed(t)
		const wrong = "0badc0de-0000-4000-8000-000000000000"
		_, err := p.client(t, wrong, "").Cleanup(context.Background(), f.node, false)
		if code := switchboard.ErrorCode(err); code != switchboard.EUNAUTHORIZED {
			t.Fatalf("code %q (%v), want %q", code, err, switchboard.EUNAUTHORIZED)
		}
		if msg := switchboard.ErrorMessage(err); !strings.Contains(msg, "does not know the ACL token Switchboard sends") {
			t.Errorf("message %q", msg)
		}
		noSecret(t, err, wrong)
		p.untouched(t, f)
	})

	t.Run("NoToken", func(t *testing.T) {
		t.Parallel()
		f := p.seed(t)
		// The anonymous token sees nothing: rather than take the node for
		// gone, the cleanup says what the token lacks.
		_, err := p.client(t, "", "").Cleanup(context.Background(), f.node, false)
		if code := switchboard.ErrorCode(err); code != switchboard.EFORBIDDEN {
			t.Fatalf("code %q (%v), want %q", code, err, switchboard.EFORBIDDEN)
		}
		if msg := switchboard.ErrorMessage(err); !strings.Contains(msg, "hides what Switchboard needs to read node "+f.node) {
			t.Errorf("message %q", msg)
		}
		p.untouched(t, f)
	})

	t.Run("OtherDatacenter", func(t *testing.T) {
		t.Parallel()
		_, err := p.client(t, p.token, "nowhere").Cleanup(context.Background(), "web-1", false)
		if code := switchboard.ErrorCode(err); code != switchboard.EINVALID {
			t.Fatalf("code %q (%v), want %q: no retry finds the datacenter", code, err, switchboard.EINVALID)
		}
		if msg := switchboard.ErrorMessage(err); !strings.Contains(msg, `knows no datacenter "nowhere"`) {
			t.Errorf("message %q", msg)
		}
		noSecret(t, err, p.token)
	})
}

// fixture is a node the way an instance leaves it in Consul: two services,
// a node check and a service check, a session with behavior release holding
// one key and one with behavior delete holding another; and another node
// holding a key of its own.
type fixture struct {
	node, other                                 string
	releaseSession, deleteSession, otherSession string
	releaseKey, deleteKey, otherKey             string
}

var nodeSeq atomic.Int64

func (p peer) seed(t *testing.T) fixture {
	t.Helper()
	n := nodeSeq.Add(1)
	f := fixture{node: fmt.Sprintf("web-%d", n), other: fmt.Sprintf("db-%d", n)}
	prefix := fmt.Sprintf("switchboard-test/%d/", n)
	f.releaseKey, f.deleteKey, f.otherKey = prefix+"locks/leader", prefix+"locks/cron", prefix+"locks/db"
	c := p.admin(t)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seed: %s: %v", what, err)
		}
	}
	_, err := c.Catalog().Register(&api.CatalogRegistration{Node: f.node, Address: "10.0.0.7",
		Service: &api.AgentService{ID: "web", Service: "web", Port: 80},
		Check:   &api.AgentCheck{CheckID: "mem", Name: "memory", Status: api.HealthPassing}}, nil)
	must("register "+f.node, err)
	_, err = c.Catalog().Register(&api.CatalogRegistration{Node: f.node, Address: "10.0.0.7",
		Service: &api.AgentService{ID: "web-admin", Service: "web-admin", Port: 8080},
		Check:   &api.AgentCheck{CheckID: "service:web-admin", Name: "admin port", Status: api.HealthPassing, ServiceID: "web-admin"}}, nil)
	must("register web-admin", err)
	_, err = c.Catalog().Register(&api.CatalogRegistration{Node: f.other, Address: "10.0.0.8",
		Check: &api.AgentCheck{CheckID: "mem", Name: "memory", Status: api.HealthPassing}}, nil)
	must("register "+f.other, err)

	session := func(node, behavior string) string {
		t.Helper()
		id, _, err := c.Session().Create(&api.SessionEntry{Name: "switchboard-test", Node: node, NodeChecks: []string{"mem"},
			Behavior: behavior, LockDelay: 15 * time.Second}, nil)
		must("create session on "+node, err)
		return id
	}
	f.releaseSession = session(f.node, api.SessionBehaviorRelease)
	f.deleteSession = session(f.node, api.SessionBehaviorDelete)
	f.otherSession = session(f.other, api.SessionBehaviorRelease)
	for key, id := range map[string]string{f.releaseKey: f.releaseSession, f.deleteKey: f.deleteSession, f.otherKey: f.otherSession} {
		ok, _, err := c.KV().Acquire(&api.KVPair{Key: key, Value: []byte(f.node), Session: id}, nil)
		must("acquire "+key, err)
		if !ok {
			t.Fatalf("seed: acquire %s: not acquired", key)
		}
	}
	return f
}

// untouched fails the test when the fixture's node lost anything.
func (p peer) untouched(t *testing.T, f fixture) {
	t.Helper()
	admin := p.admin(t)
	if n, _, err := admin.Catalog().Node(f.node, nil); err != nil || n == nil {
		t.Errorf("the node was deregistered: %v", err)
	}
	if ss, _, err := admin.Session().Node(f.node, nil); err != nil || len(ss) != 2 {
		t.Errorf("sessions were destroyed: %v, %v", ss, err)
	}
}

// admin is a Consul API client with the management token, for setting up
// and checking.
func (p peer) admin(t *testing.T) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: p.addr, Token: p.token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (p peer) client(t *testing.T, token, dc string, lockPrefixes ...string) *consul.Client {
	t.Helper()
	c, err := consul.New(consul.Options{Address: p.addr, Token: token, Datacenter: dc, LockPrefixes: lockPrefixes})
	if err != nil {
		t.Fatalf("consul.New: %v", err)
	}
	return c
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func equal(a, b consul.Result) bool {
	return a.Node == b.Node && a.DryRun == b.DryRun && a.Deregistered == b.Deregistered &&
		slices.Equal(a.Services, b.Services) && slices.Equal(a.Checks, b.Checks) &&
		slices.Equal(a.Sessions, b.Sessions) && slices.Equal(a.Locks, b.Locks)
}

func noSecret(t *testing.T, err error, secret string) {
	t.Helper()
	if err != nil && secret != "" && (strings.Contains(err.Error(), secret) || strings.Contains(switchboard.ErrorMessage(err), secret)) {
		t.Errorf("the error tells the token: %v", err)
	}
}
