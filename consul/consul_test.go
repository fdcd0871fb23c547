package consul_test

import (
	"context"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/consul"
	"github.com/switchboardhq/switchboard/consul/consultest"
	"github.com/switchboardhq/switchboard/testenv"
)

func TestConsulDown(t *testing.T) {
	t.Parallel()
	srv := consultest.New(t, consultest.Options{})
	srv.Close()
	for _, addr := range []string{srv.Addr, testenv.FreeAddr(t)} {
		c, err := consul.New(consul.Options{Address: addr, Token: "5e1d0c2b-aaaa-4bbb-8ccc-123456789abc"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Cleanup(context.Background(), "web-7", false)
		if code := switchboard.ErrorCode(err); code != switchboard.EUNAVAILABLE {
			t.Fatalf("code %q (%v), want %q", code, err, switchboard.EUNAVAILABLE)
		}
		if _, transient := switchboard.Retryable(err); !transient {
			t.Errorf("a Consul that does not answer is not worth a retry: %v", err)
		}
		if msg := switchboard.ErrorMessage(err); !strings.Contains(msg, "Consul at "+addr+" did not answer when asked to read node web-7") {
			t.Errorf("message %q", msg)
		}
		noSecret(t, err, "5e1d0c2b-aaaa-4bbb-8ccc-123456789abc")
	}
}

func TestNoACLs(t *testing.T) {
	t.Parallel()
	// Without ACLs any token, or none, may do anything.
	srv := consultest.New(t, consultest.Options{})
	p := peer{addr: srv.Addr}
	f := p.seed(t)
	res, err := p.client(t, "", "").Cleanup(context.Background(), f.node, false)
	if err != nil || !res.Deregistered || len(res.Sessions) != 2 {
		t.Errorf("Cleanup = %+v, %v", res, err)
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		res  consul.Result
		want string
	}{
		{consul.Result{}, "no Consul node"},
		{consul.Result{Deregistered: true}, "Consul node"},
		{consul.Result{Deregistered: true, Sessions: []string{"a"}}, "Consul node and 1 session"},
		{consul.Result{Sessions: []string{"a", "b"}}, "2 Consul sessions"},
		{consul.Result{Sessions: []string{"a"}, Locks: []consul.Lock{{Key: "locks/web", Session: "a"}}}, "1 Consul session (released locks/web)"},
		{consul.Result{Deregistered: true, Sessions: []string{"a", "b"}, DryRun: true,
			Locks: []consul.Lock{{Key: "locks/a", Session: "a", Deleted: true}, {Key: "locks/b", Session: "b"}, {Key: "locks/c", Session: "b"}}},
			"would remove Consul node and 2 sessions (released locks/b, locks/c; deleted locks/a)"},
	}
	for _, tt := range tests {
		if got := tt.res.Summary(); got != tt.want {
			t.Errorf("Summary(%+v) = %q, want %q", tt.res, got, tt.want)
		}
	}
	if got := (consul.Lock{Key: "k", Deleted: true}).String(); got != "k (deleted)" {
		t.Errorf("Lock.String() = %q", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		opts consul.Options
		says string // "" means valid
	}{
		{consul.Options{Address: "127.0.0.1:8500"}, ""},
		{consul.Options{Address: "https://consul.internal:8501", Token: "abc", Datacenter: "dc2", LockPrefixes: []string{"locks/"}}, ""},
		{consul.Options{Address: "http://consul.internal:8500"}, ""},
		{consul.Options{}, "address is missing"},
		{consul.Options{Address: "consul.internal"}, `address "consul.internal" is not HOST:PORT`},
		{consul.Options{Address: "ftp://consul.internal:21"}, "the scheme is http or https"},
		{consul.Options{Address: "https://"}, "is not a URL"},
		{consul.Options{Address: "https://u:hunter2@consul.internal:8501"}, "must not hold a user or password"},
		{consul.Options{Address: "127.0.0.1:8500", Token: "abc def-hunter2"}, "token holds white space"},
		{consul.Options{Address: "127.0.0.1:8500", Datacenter: "dc1?x=y"}, "datacenter"},
		{consul.Options{Address: "127.0.0.1:8500", InstanceMeta: "ec2-instance-id", NodeName: "{{name}}.node"}, ""},
		{consul.Options{Address: "127.0.0.1:8500", InstanceMeta: "instance id"}, `instance_meta "instance id" is not a node meta key`},
		{consul.Options{Address: "127.0.0.1:8500", NodeName: "{{host}}"}, "it may hold {{id}}"},
		{consul.Options{Address: "127.0.0.1:8500", NodeName: "web"}, "holds neither {{id}} nor {{name}}"},
	}
	for _, tt := range tests {
		err := tt.opts.Validate()
		switch {
		case tt.says == "" && err != nil:
			t.Errorf("%+v: %v", tt.opts, err)
		case tt.says != "" && (err == nil || !strings.Contains(err.Error(), tt.says)):
			t.Errorf("%+v: Validate() = %v, want it to say %q", tt.opts, err, tt.says)
		}
		if err != nil {
			noSecret(t, err, "hunter2")
		}
		if _, err2 := consul.New(tt.opts); (err == nil) != (err2 == nil) {
			t.Errorf("%+v: New() = %v, Validate() = %v", tt.opts, err2, err)
		}
	}
}

func TestCleanupRefusesWhatIsNotANodeName(t *testing.T) {
	t.Parallel()
	srv := consultest.New(t, consultest.Options{})
	c, err := consul.New(consul.Options{Address: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "../x", "..", "web 7", "web/7", "web?dc=dc2"} {
		_, err := c.Cleanup(context.Background(), name, false)
		if code := switchboard.ErrorCode(err); code != switchboard.EINVALID {
			t.Errorf("Cleanup(%q): code %q (%v), want %q", name, code, err, switchboard.EINVALID)
		}
	}
}
