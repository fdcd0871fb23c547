// Package chef cleans up after an instance that is gone: it deletes the
// instance's node and API client from a Chef server (go-chef, signed
// requests), and declares the chef_delete workflow step that does it.
//
// Cleanup is idempotent: a node or client that is not there counts as
// already deleted, so a second run, or a retry after a failure half way,
// succeeds and says what was already absent.
package chef

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-chef/chef"

	"github.com/switchboardhq/switchboard"
)

// DefaultSearchAttribute is the node attribute FindNode searches by
// default: Ohai's ec2 plugin reports the instance id as the automatic
// attribute ec2.instance_id, which Chef's search index (and goiardi's)
// flattens to ec2_instance_id.
const DefaultSearchAttribute = "ec2_instance_id"

// Options say which Chef server to talk to, and as whom.
type Options struct {
	// ServerURL is the Chef server's API URL: https://chef.example.com/
	// for Chef 11, https://chef.example.com/organizations/ORG/ for Chef
	// 12 and later.
	ServerURL string
	// ClientName is the API client Switchboard signs requests as. It must
	// be allowed to delete nodes and clients: an admin client on Chef 11,
	// a member of the admins group (or with delete rights on the nodes and
	// clients containers) on later servers.
	ClientName string
	// Key is the client's private key, PEM. It is a secret: it is never
	// logged nor put in an error.
	Key string
	// SearchAttribute is the flattened node attribute that holds the
	// instance id, for FindNode; default DefaultSearchAttribute.
	SearchAttribute string
	// Timeout bounds each request; default 30s.
	Timeout time.Duration
}

// WithDefaults returns the options with every unset default filled in.
func (o Options) WithDefaults() Options {
	if o.SearchAttribute == "" {
		o.SearchAttribute = DefaultSearchAttribute
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	return o
}

// Validate reports the first option that is wrong, by name, and how to fix
// it.
func (o Options) Validate() error {
	u, err := url.Parse(o.ServerURL)
	switch {
	case o.ServerURL == "":
		return errors.New("chef: server_url is missing: the Chef server's API URL, like https://chef.example.com/organizations/ops/")
	case err == nil && u.User != nil:
		return errors.New("chef: server_url must not hold a user or password: Chef requests are signed with the client key")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("chef: server_url %q is not an http(s) URL, like https://chef.example.com/organizations/ops/", o.ServerURL)
	case o.ClientName == "":
		return errors.New("chef: client_name is missing: the API client Switchboard signs its requests as")
	case o.Key == "":
		return errors.New("chef: key is missing: the PEM private key of client_name")
	case o.SearchAttribute != "" && !attributeName.MatchString(o.SearchAttribute):
		return fmt.Errorf("chef: search_attribute %q is not a flattened attribute name, like ec2_instance_id (ec2.instance_id)", o.SearchAttribute)
	}
	// go-chef's parse error would do, but says nothing a person can act on.
	if _, err := chef.PrivateKeyFromString([]byte(o.Key)); err != nil {
		return errors.New("chef: key is not a PEM RSA private key (-----BEGIN RSA PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----)")
	}
	return nil
}

// attributeName is a node attribute as Chef's search index names it: the
// path joined with "_".
var attributeName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// nodeName is a node or client name Cleanup accepts.
var nodeName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:-]*$`)

// Client deletes nodes and clients from one Chef server.
type Client struct {
	api  *chef.Client
	opts Options
	// where names the server in errors.
	where string
}

// New returns a client for the server the options name.
func New(opts Options) (*Client, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	base := opts.ServerURL
	// go-chef resolves request paths against the URL: without the slash,
	// .../organizations/ops + "nodes" would be .../organizations/nodes.
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	api, err := chef.NewClient(&chef.Config{
		Name:    opts.ClientName,
		Key:     opts.Key,
		BaseURL: base,
		Client:  &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: opts.Timeout},
	})
	if err != nil {
		// Validate parsed the key and the URL, so this is unexpected;
		// go-chef's error holds neither.
		return nil, fmt.Errorf("chef: %w", err)
	}
	u, _ := url.Parse(base)
	return &Client{api: api, opts: opts, where: "The Chef server at " + u.Redacted()}, nil
}

// Result is what Cleanup did, or would do in a dry run.
type Result struct {
	// Node is the node (and client) name.
	Node string
	// Deleted lists what was deleted, of "node" and "client", in that
	// order; in a dry run, what would be.
	Deleted []string
	// Absent lists what was already gone.
	Absent []string
	DryRun bool
}

// Summary says what the result removed, for a channel report: "Chef node
// and client", "" when nothing was there.
func (r Result) Summary() string {
	// It reads as what a report removed, so that a report can list every
	// system: "no Chef node or client" when there was nothing.
	if len(r.Deleted) == 0 {
		return "no Chef node or client"
	}
	s := "Chef " + strings.Join(r.Deleted, " and ")
	if r.DryRun {
		s = "would remove " + s
	}
	return s
}

// Cleanup deletes the node called name and the API client of the same name
// (the name chef-client registers both under). Each that is not there counts
// as already gone. In a dry run it deletes nothing and reports what it
// would delete. On an error, the result says what was done before it.
func (c *Client) Cleanup(ctx context.Context, name string, dryRun bool) (Result, error) {
	res := Result{Node: name, DryRun: dryRun}
	if name == "" {
		return res, switchboard.Errorf(switchboard.EINVALID, "Which Chef node? The node name is empty.")
	}
	// Chef's own rule for names, less a leading "." or "-": the name goes
	// into the request path, where "../clients/admin" would name another
	// object (go-chef cleans the path after escaping it).
	if !nodeName.MatchString(name) {
		return res, switchboard.Errorf(switchboard.EINVALID, "%q is not a Chef node name (letters, digits, '_', '.', ':' and '-'), so nothing was deleted.", name)
	}
	for _, kind := range []string{"node", "client"} {
		path := kind + "s/" + url.PathEscape(name)
		method, action := http.MethodDelete, "delete "+kind+" "+name
		if dryRun {
			method, action = http.MethodGet, "look up "+kind+" "+name
		}
		err := c.do(ctx, method, path, nil)
		switch {
		case isNotFound(err):
			res.Absent = append(res.Absent, kind)
		case err != nil:
			return res, c.fail(ctx, err, action)
		default:
			res.Deleted = append(res.Deleted, kind)
		}
	}
	return res, nil
}

// FindNode returns the names of the nodes whose SearchAttribute
// (ec2_instance_id by default) is the instance id, sorted; none when no node has
// it. It asks the server's search index (GET /search/node), then keeps only
// the nodes whose attribute is exactly the id, since a search index may
// match more loosely than that.
func (c *Client) FindNode(ctx context.Context, id string) ([]string, error) {
	if id == "" {
		return nil, switchboard.Errorf(switchboard.EINVALID, "Which instance? The instance id to search Chef nodes for is empty.")
	}
	if !instanceID.MatchString(id) {
		return nil, switchboard.Errorf(switchboard.EINVALID, "%q is not an instance id (letters, digits, '.', '_' and '-'), so no Chef node is searched for it.", id)
	}
	q := url.Values{
		"q":     {c.opts.SearchAttribute + ":" + escapeQuery(id)},
		"sort":  {"X_CHEF_id_CHEF_X asc"},
		"start": {"0"},
		"rows":  {"1000"},
	}
	var out struct {
		Total int               `json:"total"`
		Rows  []json.RawMessage `json:"rows"`
	}
	if err := c.do(ctx, http.MethodGet, "search/node?"+q.Encode(), &out); err != nil {
		return nil, c.fail(ctx, err, "search for nodes with "+c.opts.SearchAttribute+" "+id)
	}
	var names []string
	for _, raw := range out.Rows {
		var n node
		if json.Unmarshal(raw, &n) != nil || n.Name == "" {
			continue
		}
		if n.has(c.opts.SearchAttribute, id) && !slices.Contains(names, n.Name) {
			names = append(names, n.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// node is what FindNode reads of a node: its name and attributes.
type node struct {
	Name      string         `json:"name"`
	Automatic map[string]any `json:"automatic"`
	Normal    map[string]any `json:"normal"`
	Default   map[string]any `json:"default"`
	Override  map[string]any `json:"override"`
}

// has reports whether any attribute of the node, its path joined with "_"
// the way Chef's search index flattens it, is attr and holds value.
func (n node) has(attr, value string) bool {
	for _, m := range []map[string]any{n.Automatic, n.Normal, n.Default, n.Override} {
		if slices.Contains(flatValues(m, "", attr, nil), value) {
			return true
		}
	}
	return false
}

// flatValues appends to out the strings at the attributes of m that
// flatten to attr (ec2.instance_id and a top-level ec2_instance_id both
// do).
func flatValues(m map[string]any, prefix, attr string, out []string) []string {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "_" + k
		}
		if !strings.HasPrefix(attr, key) {
			continue
		}
		switch v := v.(type) {
		case string:
			if key == attr {
				out = append(out, v)
			}
		case map[string]any:
			out = flatValues(v, key, attr, out)
		}
	}
	return out
}

// instanceID is what FindNode accepts as an instance id: EC2's i-0abc...,
// Alibaba's i-bp1..., a GUID, a number. Anything else might be query syntax.
var instanceID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// escapeQuery escapes an instance id for Chef's (Solr's, Lucene's) query
// syntax: of the characters instanceID allows, only "-" means something
// there. goiardi's parser accepts "\-" but not every escape Lucene knows
// (it refuses "\*" and "\."), which is one more reason to accept no
// other character.
func escapeQuery(id string) string {
	return strings.ReplaceAll(id, "-", `\-`)
}

// do sends one signed request. go-chef's own methods take no context, so
// requests are built and sent here, with ctx.
func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := c.api.NewRequest(method, path, nil)
	if err != nil {
		return err
	}
	res, err := c.api.Do(req.WithContext(ctx), out)
	if res != nil {
		res.Body.Close()
	}
	return err
}
