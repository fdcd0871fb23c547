package chef_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/chef"
	"github.com/switchboardhq/switchboard/testenv"
)

// The tests run against goiardi with authentication on: every request
// go-chef signs is checked by a real Chef 11 API server.

const adminName = "switchboard"

type testBundle struct {
	srv    *testenv.ChefServer
	client *chef.Client
	key    string // the private key of the client Switchboard signs as
}

// setup starts a goiardi of the test's own and an admin API client for
// Switchboard, created through the server's API.
func setup(t *testing.T) testBundle {
	t.Helper()
	srv := testenv.Goiardi(t)
	key := srv.CreateClient(t, adminName, true)
	return testBundle{srv: srv, key: key, client: newClient(t, srv.URL, adminName, key)}
}

func newClient(t *testing.T, url, name, key string) *chef.Client {
	t.Helper()
	c, err := chef.New(chef.Options{ServerURL: url, ClientName: name, Key: key})
	if err != nil {
		t.Fatalf("chef.New: %v", err)
	}
	return c
}

// instance registers what chef-client registers for a booted instance: a
// node with Ohai's ec2 attributes and an API client of the same name.
func (b testBundle) instance(t *testing.T, name, instanceID string) {
	t.Helper()
	b.srv.CreateNode(t, name, map[string]any{"fqdn": name + ".example.com", "ec2": map[string]any{"instance_id": instanceID}})
	b.srv.CreateClient(t, name, false)
}

func TestCleanup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.instance(t, "web-7", "i-0abc1234def567890")
	b.instance(t, "web-8", "i-0abc1234def567891")
	ctx := context.Background()

	res, err := b.client.Cleanup(ctx, "web-7", false)
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	want := chef.Result{Node: "web-7", Deleted: []string{"node", "client"}}
	if !equal(res, want) {
		t.Errorf("Cleanup = %+v, want %+v", res, want)
	}
	if res.Summary() != "Chef node and client" {
		t.Errorf("Summary() = %q", res.Summary())
	}
	if b.srv.HasNode(t, "web-7") || b.srv.HasClient(t, "web-7") {
		t.Errorf("web-7's node or client is still on the server")
	}
	if !b.srv.HasNode(t, "web-8") || !b.srv.HasClient(t, "web-8") {
		t.Errorf("web-8 was deleted too")
	}

	// Again: both are gone, which is success.
	res, err = b.client.Cleanup(ctx, "web-7", false)
	if err != nil {
		t.Fatalf("second Cleanup: %v", err)
	}
	want = chef.Result{Node: "web-7", Absent: []string{"node", "client"}}
	if !equal(res, want) {
		t.Errorf("second Cleanup = %+v, want %+v", res, want)
	}
	if res.Summary() != "no Chef node or client" {
		t.Errorf("Summary() of nothing = %q", res.Summary())
	}
}

func TestCleanupNodeWithoutClient(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.CreateNode(t, "db-1", nil)

	res, err := b.client.Cleanup(context.Background(), "db-1", false)
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if want := (chef.Result{Node: "db-1", Deleted: []string{"node"}, Absent: []string{"client"}}); !equal(res, want) {
		t.Errorf("Cleanup = %+v, want %+v", res, want)
	}
	if res.Summary() != "Chef node" {
		t.Errorf("Summary() = %q", res.Summary())
	}
}

func TestCleanupDryRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.instance(t, "web-7", "i-0abc1234def567890")
	ctx := context.Background()

	res, err := b.client.Cleanup(ctx, "web-7", true)
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if want := (chef.Result{Node: "web-7", Deleted: []string{"node", "client"}, DryRun: true}); !equal(res, want) {
		t.Errorf("dry run = %+v, want %+v", res, want)
	}
	if !strings.HasPrefix(res.Summary(), "would remove ") {
		t.Errorf("Summary() = %q, want it to say it was a dry run", res.Summary())
	}
	if !b.srv.HasNode(t, "web-7") || !b.srv.HasClient(t, "web-7") {
		t.Errorf("a dry run deleted something")
	}

	res, err = b.client.Cleanup(ctx, "gone", true)
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if want := (chef.Result{Node: "gone", Absent: []string{"node", "client"}, DryRun: true}); !equal(res, want) {
		t.Errorf("dry run of nothing = %+v, want %+v", res, want)
	}
}

func TestFindNode(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.instance(t, "web-7", "i-0abc1234def567890")
	b.instance(t, "web-8", "i-0abc1234def5678901") // the first id is a prefix of this one
	b.srv.CreateNode(t, "laptop", map[string]any{"fqdn": "laptop.example.com"})
	ctx := context.Background()

	tests := []struct {
		id   string
		want []string
		code string
	}{
		{"i-0abc1234def567890", []string{"web-7"}, ""},
		{"i-0abc1234def5678901", []string{"web-8"}, ""},
		{"i-00000000", nil, ""},
		// What is not an instance id is not searched for: it could be
		// query syntax that widens the search.
		{"i-0abc1234def56789*", nil, switchboard.EINVALID},
		{"* OR fqdn:laptop.example.com", nil, switchboard.EINVALID},
		{"", nil, switchboard.EINVALID},
	}
	for _, tt := range tests {
		got, err := b.client.FindNode(ctx, tt.id)
		if code := switchboard.ErrorCode(err); code != tt.code {
			t.Errorf("FindNode(%q): code %q (%v), want %q", tt.id, code, err, tt.code)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("FindNode(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestFindNodeOtherAttribute(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// A fleet whose nodes carry the instance id under another attribute.
	b.srv.CreateNode(t, "ecs-3", map[string]any{"cloud": map[string]any{"instance": map[string]any{"id": "i-bp1abc"}}})
	c, err := chef.New(chef.Options{ServerURL: b.srv.URL, ClientName: adminName, Key: b.key, SearchAttribute: "cloud_instance_id"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.FindNode(context.Background(), "i-bp1abc")
	if err != nil || !slices.Equal(got, []string{"ecs-3"}) {
		t.Errorf("FindNode = %v, %v; want [ecs-3]", got, err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.instance(t, "web-7", "i-0abc1234def567890")
	otherKey := newKey(t)
	plain := b.srv.CreateClient(t, "plain", false)

	tests := []struct {
		name   string
		client *chef.Client
		code   string
		says   string
	}{
		{"a key the server does not know", newClient(t, b.srv.URL, adminName, otherKey), switchboard.EUNAUTHORIZED,
			"did not accept the signature of client switchboard: check that the Chef key is that client's private key"},
		{"a client the server does not know", newClient(t, b.srv.URL, "nobody", otherKey), switchboard.EUNAUTHORIZED,
			"did not accept the signature of client nobody"},
		{"a client that may not delete nodes", newClient(t, b.srv.URL, "plain", plain), switchboard.EFORBIDDEN,
			"does not let client plain delete node web-7: make it an admin client"},
	}
	for _, tt := range tests {
		_, err := tt.client.Cleanup(context.Background(), "web-7", false)
		if code := switchboard.ErrorCode(err); code != tt.code {
			t.Errorf("%s: code %q (%v), want %q", tt.name, code, err, tt.code)
		}
		msg := switchboard.ErrorMessage(err)
		if !strings.Contains(msg, tt.says) {
			t.Errorf("%s: message %q, want it to say %q", tt.name, msg, tt.says)
		}
		if _, transient := switchboard.Retryable(err); transient {
			t.Errorf("%s: the error is transient; retrying cannot help", tt.name)
		}
		noSecrets(t, err, otherKey, plain, b.key)
	}
	if !b.srv.HasNode(t, "web-7") {
		t.Errorf("a refused client deleted the node")
	}
}

func TestServerStopped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.Stop()

	_, err := b.client.Cleanup(context.Background(), "web-7", false)
	if code := switchboard.ErrorCode(err); code != switchboard.EUNAVAILABLE {
		t.Fatalf("code %q (%v), want %q", code, err, switchboard.EUNAVAILABLE)
	}
	if _, transient := switchboard.Retryable(err); !transient {
		t.Errorf("a server that does not answer is not worth a retry: %v", err)
	}
	if msg := switchboard.ErrorMessage(err); !strings.Contains(msg, "did not answer when asked to delete node web-7") {
		t.Errorf("message %q", msg)
	}
	_, err = b.client.FindNode(context.Background(), "i-0abc1234def567890")
	if code := switchboard.ErrorCode(err); code != switchboard.EUNAVAILABLE {
		t.Errorf("FindNode: code %q (%v), want %q", code, err, switchboard.EUNAVAILABLE)
	}
	noSecrets(t, err, b.key)
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	ok := chef.Options{ServerURL: "https://chef.example.com/organizations/ops", ClientName: "switchboard", Key: key}
	tests := []struct {
		name   string
		change func(*chef.Options)
		says   string // "" means valid
	}{
		{"valid", func(*chef.Options) {}, ""},
		{"no server_url", func(o *chef.Options) { o.ServerURL = "" }, "server_url is missing"},
		{"server_url without scheme", func(o *chef.Options) { o.ServerURL = "chef.example.com" }, `server_url "chef.example.com" is not an http(s) URL`},
		{"server_url with a password", func(o *chef.Options) { o.ServerURL = "https://u:p@chef.example.com/" }, "must not hold a user or password"},
		{"no client_name", func(o *chef.Options) { o.ClientName = "" }, "client_name is missing"},
		{"no key", func(o *chef.Options) { o.Key = "" }, "key is missing"},
		{"not a key", func(o *chef.Options) {
			o.Key = "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0\n-----END RSA PRIVATE KEY-----\n"
		}, "key is not a PEM RSA private key"},
		{"a search attribute that is a query", func(o *chef.Options) { o.SearchAttribute = "a:b OR c" }, "search_attribute"},
	}
	for _, tt := range tests {
		o := ok
		tt.change(&o)
		err := o.Validate()
		switch {
		case tt.says == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.says != "" && (err == nil || !strings.Contains(err.Error(), tt.says)):
			t.Errorf("%s: Validate() = %v, want it to say %q", tt.name, err, tt.says)
		}
		if err != nil {
			noSecrets(t, err, o.Key, "c2VjcmV0", "u:p")
		}
		if _, err2 := chef.New(o); (err == nil) != (err2 == nil) {
			t.Errorf("%s: New() = %v, Validate() = %v", tt.name, err2, err)
		}
	}
}

func equal(a, b chef.Result) bool {
	return a.Node == b.Node && a.DryRun == b.DryRun && slices.Equal(a.Deleted, b.Deleted) && slices.Equal(a.Absent, b.Absent)
}

// newKey makes a private key no server knows.
func newKey(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
}

// noSecrets fails the test when err says any of the secrets, or any line
// of one (a PEM key's body).
func noSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	text := err.Error() + "\n" + switchboard.ErrorMessage(err)
	for _, s := range secrets {
		for line := range strings.SplitSeq(s, "\n") {
			if len(line) >= 8 && !strings.HasPrefix(line, "-----") && strings.Contains(text, line) {
				t.Errorf("the error tells a secret: %v", err)
				return
			}
		}
	}
}

func TestCleanupRefusesWhatIsNotANodeName(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, name := range []string{"", "../clients/" + adminName, "..", "web 7", "web/7", "web?7"} {
		_, err := b.client.Cleanup(context.Background(), name, false)
		if code := switchboard.ErrorCode(err); code != switchboard.EINVALID {
			t.Errorf("Cleanup(%q): code %q (%v), want %q", name, code, err, switchboard.EINVALID)
		}
	}
	if !b.srv.HasClient(t, adminName) {
		t.Errorf("a path in a node name deleted the client %s", adminName)
	}
}

// Holdings lists the nodes that carry an instance id, with the addresses
// Ohai reported; a node without one is not listed.
func TestHoldings(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.CreateNode(t, "web-7", map[string]any{"ipaddress": "10.0.0.7",
		"ec2": map[string]any{"instance_id": "i-0abc1234def567890", "public_ipv4": "203.0.113.7", "local_hostname": "ip-10-0-0-7.ec2.internal"}})
	b.instance(t, "web-8", "i-0abc1234def567891")
	b.srv.CreateNode(t, "laptop", map[string]any{"ipaddress": "192.168.1.2"})
	got, err := b.client.Holdings(context.Background())
	if err != nil {
		t.Fatalf("Holdings: %v", err)
	}
	want := []switchboard.Holding{
		{System: "Chef", Item: "node web-7", Instance: "i-0abc1234def567890", Name: "web-7", Addresses: []string{"10.0.0.7", "203.0.113.7", "ip-10-0-0-7.ec2.internal"}},
		{System: "Chef", Item: "node web-8", Instance: "i-0abc1234def567891", Name: "web-8"},
	}
	if !slices.EqualFunc(got, want, func(a, b switchboard.Holding) bool {
		return a.System == b.System && a.Item == b.Item && a.Instance == b.Instance && a.Name == b.Name && slices.Equal(a.Addresses, b.Addresses)
	}) {
		t.Errorf("Holdings =\n%+v\nwant\n%+v", got, want)
	}
}
