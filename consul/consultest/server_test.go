package consultest_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchboardhq/switchboard/consul/consultest"
	"github.com/switchboardhq/switchboard/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The semantics the cleanup relies on, checked against this server and, when
// there is one, against a real Consul: both must pass the same tests.

func TestSemanticsConsultest(t *testing.T) {
	t.Parallel()
	srv := consultest.New(t, consultest.Options{Token: "mgmt"})
	semantics(t, target{addr: srv.Addr, token: "mgmt", agentNode: "consultest"})
}

func TestSemanticsConsulAgent(t *testing.T) {
	t.Parallel()
	a := testenv.Consul(t)
	semantics(t, target{addr: a.Addr, token: a.Token, agentNode: "testenv"})
}

type target struct {
	addr, token, agentNode string
}

var seq atomic.Int64

func semantics(t *testing.T, tg target) {
	c, err := api.NewClient(&api.Config{Address: tg.addr, Token: tg.token})
	if err != nil {
		t.Fatal(err)
	}
	// node registers a node with a passing check "mem" and returns its name.
	node := func(t *testing.T) string {
		t.Helper()
		name := fmt.Sprintf("sem-%d", seq.Add(1))
		if _, err := c.Catalog().Register(&api.CatalogRegistration{Node: name, Address: "10.1.0.1",
			Check: &api.AgentCheck{CheckID: "mem", Name: "memory", Status: api.HealthPassing}}, nil); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		return name
	}
	session := func(t *testing.T, node, behavior string) string {
		t.Helper()
		id, _, err := c.Session().Create(&api.SessionEntry{Node: node, NodeChecks: []string{"mem"}, Behavior: behavior}, nil)
		if err != nil {
			t.Fatalf("create session on %s: %v", node, err)
		}
		return id
	}
	key := func(name string) string { return fmt.Sprintf("semantics/%d/%s", seq.Add(1), name) }

	t.Run("SessionDefaults", func(t *testing.T) {
		t.Parallel()
		// No node: the agent's own, tied to its serf health check.
		id, _, err := c.Session().Create(nil, nil)
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		s, _, err := c.Session().Info(id, nil)
		if err != nil || s == nil {
			t.Fatalf("info: %+v, %v", s, err)
		}
		if s.Node != tg.agentNode || s.Behavior != "release" || s.LockDelay != 15*time.Second || strings.Join(s.NodeChecks, ",") != "serfHealth" {
			t.Errorf("session %+v; want the agent's node, release, 15s, serfHealth", s)
		}
		c.Session().Destroy(id, nil)
	})

	t.Run("SessionCreateRefusals", func(t *testing.T) {
		t.Parallel()
		n := node(t)
		tests := []struct {
			entry *api.SessionEntry
			says  string
		}{
			{&api.SessionEntry{Node: n}, "Missing check 'serfHealth' registration"},
			{&api.SessionEntry{Node: "nowhere-" + n, NodeChecks: []string{"mem"}}, "Missing node registration"},
			{&api.SessionEntry{Node: n, NodeChecks: []string{"disk"}}, "Missing check 'disk' registration"},
			{&api.SessionEntry{Node: n, NodeChecks: []string{"mem"}, Behavior: "explode"}, "Invalid session behavior"},
		}
		for _, tt := range tests {
			_, _, err := c.Session().Create(tt.entry, nil)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("create %+v = %v, want it to say %q", tt.entry, err, tt.says)
			}
		}
		if _, err := c.Catalog().Register(&api.CatalogRegistration{Node: n, Address: "10.1.0.1",
			Check: &api.AgentCheck{CheckID: "disk", Name: "disk", Status: api.HealthCritical}}, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Session().Create(&api.SessionEntry{Node: n, NodeChecks: []string{"disk"}}, nil); err == nil || !strings.Contains(err.Error(), "critical") {
			t.Errorf("a session on a critical check = %v, want a refusal", err)
		}
		// An empty list of checks ties a session to none.
		if _, _, err := c.Session().CreateNoChecks(&api.SessionEntry{Node: n}, nil); err != nil {
			t.Errorf("a session without checks: %v", err)
		}
	})

	t.Run("AcquireAndRelease", func(t *testing.T) {
		t.Parallel()
		n := node(t)
		a, b := session(t, n, "release"), session(t, n, "release")
		k := key("lock")
		acquire := func(id string) bool {
			t.Helper()
			ok, _, err := c.KV().Acquire(&api.KVPair{Key: k, Value: []byte(id), Session: id}, nil)
			if err != nil {
				t.Fatalf("acquire as %s: %v", id, err)
			}
			return ok
		}
		release := func(id string) bool {
			t.Helper()
			ok, _, err := c.KV().Release(&api.KVPair{Key: k, Session: id}, nil)
			if err != nil {
				t.Fatalf("release as %s: %v", id, err)
			}
			return ok
		}
		if !acquire(a) {
			t.Fatalf("a could not take a free lock")
		}
		if !acquire(a) {
			t.Errorf("a could not take again the lock it holds")
		}
		if acquire(b) || release(b) {
			t.Fatalf("b took or released a's lock")
		}
		kv, _, _ := c.KV().Get(k, nil)
		if kv == nil || kv.Session != a || kv.LockIndex != 1 {
			t.Errorf("held key %+v; want session a, lock index 1 (re-acquiring does not count)", kv)
		}
		if !release(a) || !acquire(b) {
			t.Errorf("once a released it, b takes it")
		}
		kv, _, _ = c.KV().Get(k, nil)
		if kv == nil || kv.Session != b || kv.LockIndex != 2 {
			t.Errorf("key %+v; want session b, lock index 2", kv)
		}
		// A plain write keeps the lock.
		if _, err := c.KV().Put(&api.KVPair{Key: k, Value: []byte("new")}, nil); err != nil {
			t.Fatal(err)
		}
		if kv, _, _ = c.KV().Get(k, nil); kv == nil || kv.Session != b || string(kv.Value) != "new" {
			t.Errorf("after a plain write %+v; want the value changed and the lock kept", kv)
		}
		if _, _, err := c.KV().Acquire(&api.KVPair{Key: k, Session: "00000000-0000-4000-8000-000000000000"}, nil); err == nil {
			t.Errorf("acquire with a session that does not exist succeeded")
		}
	})

	t.Run("DestroyByBehavior", func(t *testing.T) {
		t.Parallel()
		n := node(t)
		rel, del := session(t, n, "release"), session(t, n, "delete")
		kr, kd := key("release"), key("delete")
		for k, id := range map[string]string{kr: rel, kd: del} {
			if ok, _, err := c.KV().Acquire(&api.KVPair{Key: k, Value: []byte("v"), Session: id}, nil); err != nil || !ok {
				t.Fatalf("acquire %s: %v, %v", k, ok, err)
			}
		}
		for _, id := range []string{rel, del, rel} { // destroying twice is fine
			if _, err := c.Session().Destroy(id, nil); err != nil {
				t.Fatalf("destroy %s: %v", id, err)
			}
		}
		if kv, _, _ := c.KV().Get(kr, nil); kv == nil || kv.Session != "" || string(kv.Value) != "v" {
			t.Errorf("released key %+v; want it there, unlocked", kv)
		}
		if kv, _, _ := c.KV().Get(kd, nil); kv != nil {
			t.Errorf("deleted key %+v; want it gone", kv)
		}
		// The lock delay keeps a new session off the released key.
		other := session(t, n, "release")
		if ok, _, err := c.KV().Acquire(&api.KVPair{Key: kr, Session: other}, nil); err != nil || ok {
			t.Errorf("acquire during the lock delay = %v, %v; want false", ok, err)
		}
	})

	t.Run("CriticalCheckInvalidatesSessions", func(t *testing.T) {
		t.Parallel()
		n := node(t)
		id := session(t, n, "release")
		k := key("lock")
		if ok, _, err := c.KV().Acquire(&api.KVPair{Key: k, Session: id}, nil); err != nil || !ok {
			t.Fatalf("acquire: %v, %v", ok, err)
		}
		if _, err := c.Catalog().Register(&api.CatalogRegistration{Node: n, Address: "10.1.0.1",
			Check: &api.AgentCheck{CheckID: "mem", Name: "memory", Status: api.HealthCritical}}, nil); err != nil {
			t.Fatal(err)
		}
		if s, _, err := c.Session().Info(id, nil); err != nil || s != nil {
			t.Errorf("session after its check went critical: %+v, %v; want it gone", s, err)
		}
		if kv, _, _ := c.KV().Get(k, nil); kv == nil || kv.Session != "" {
			t.Errorf("key %+v; want it released", kv)
		}
	})

	t.Run("DeregisterNode", func(t *testing.T) {
		t.Parallel()
		n := node(t)
		if _, err := c.Catalog().Register(&api.CatalogRegistration{Node: n, Address: "10.1.0.1",
			Service: &api.AgentService{Service: "web", Port: 80}}, nil); err != nil {
			t.Fatal(err)
		}
		cn, _, err := c.Catalog().Node(n, nil)
		if err != nil || cn == nil || cn.Services["web"] == nil || cn.Node.Address != "10.1.0.1" {
			t.Fatalf("node %+v, %v; want it with service web (its id defaults to its name)", cn, err)
		}
		id := session(t, n, "delete")
		k := key("ephemeral")
		if ok, _, err := c.KV().Acquire(&api.KVPair{Key: k, Session: id}, nil); err != nil || !ok {
			t.Fatalf("acquire: %v, %v", ok, err)
		}
		for range 2 { // deregistering what is gone is success
			if _, err := c.Catalog().Deregister(&api.CatalogDeregistration{Node: n}, nil); err != nil {
				t.Fatalf("deregister: %v", err)
			}
		}
		if cn, _, err := c.Catalog().Node(n, nil); err != nil || cn != nil {
			t.Errorf("node after deregister %+v, %v; want null", cn, err)
		}
		if checks, _, err := c.Health().Node(n, nil); err != nil || len(checks) != 0 {
			t.Errorf("checks after deregister %v, %v", checks, err)
		}
		if ss, _, err := c.Session().Node(n, nil); err != nil || len(ss) != 0 {
			t.Errorf("sessions after deregister %v, %v; want none", ss, err)
		}
		if kv, _, _ := c.KV().Get(k, nil); kv != nil {
			t.Errorf("key of a delete session after deregister %+v; want it gone", kv)
		}
	})

	t.Run("RegisterRefusals", func(t *testing.T) {
		t.Parallel()
		for _, reg := range []*api.CatalogRegistration{
			{Node: "", Address: "10.1.0.1"},
			{Node: fmt.Sprintf("sem-%d", seq.Add(1))},
		} {
			if _, err := c.Catalog().Register(reg, nil); err == nil {
				t.Errorf("register %+v succeeded", reg)
			}
		}
	})

	t.Run("ACLs", func(t *testing.T) {
		t.Parallel()
		n := node(t)
		anon, _ := api.NewClient(&api.Config{Address: tg.addr})
		cn, qm, err := anon.Catalog().Node(n, nil)
		if err != nil || cn != nil || !qm.ResultsFilteredByACLs {
			t.Errorf("anonymous read of a node = %+v, %+v, %v; want null, filtered", cn, qm, err)
		}
		if _, err := anon.Catalog().Deregister(&api.CatalogDeregistration{Node: n}, nil); err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "Permission denied") {
			t.Errorf("anonymous deregister = %v; want 403 Permission denied", err)
		}
		bad, _ := api.NewClient(&api.Config{Address: tg.addr, Token: "0badc0de-2222-4000-8000-000000000000"})
		if _, _, err := bad.Catalog().Node(n, nil); err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "ACL not found") {
			t.Errorf("read with an unknown token = %v; want 403 ACL not found", err)
		}
	})
}

// The lock delay ends: this server's clock is the test's.
func TestLockDelayEnds(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var elapsed atomic.Int64 // the server reads the clock in its own goroutines
	srv := consultest.New(t, consultest.Options{NowFunc: func() time.Time { return start.Add(time.Duration(elapsed.Load())) }})
	c, err := api.NewClient(&api.Config{Address: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := c.Session().Create(&api.SessionEntry{LockDelay: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := c.Session().Create(nil, nil)
	if ok, _, err := c.KV().Acquire(&api.KVPair{Key: "k", Session: a}, nil); err != nil || !ok {
		t.Fatalf("acquire: %v, %v", ok, err)
	}
	c.Session().Destroy(a, nil)
	elapsed.Store(int64(4 * time.Second))
	if ok, _, _ := c.KV().Acquire(&api.KVPair{Key: "k", Session: b}, nil); ok {
		t.Errorf("acquired 4s into a 5s lock delay")
	}
	elapsed.Store(int64(5 * time.Second))
	if ok, _, err := c.KV().Acquire(&api.KVPair{Key: "k", Session: b}, nil); err != nil || !ok {
		t.Errorf("acquire after the lock delay = %v, %v; want true", ok, err)
	}
}

func TestOtherDatacenter(t *testing.T) {
	t.Parallel()
	srv := consultest.New(t, consultest.Options{})
	c, _ := api.NewClient(&api.Config{Address: srv.Addr, Datacenter: "dc9"})
	if _, _, err := c.Catalog().Node("x", nil); err == nil || !strings.Contains(err.Error(), "No path to datacenter") {
		t.Errorf("read in another datacenter = %v", err)
	}
}
