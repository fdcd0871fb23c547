package consul

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/switchboardhq/switchboard"
)

// DefaultInstanceMeta is the node meta key Holdings reads an instance id
// from by default: an agent started with -node-meta instance_id:i-0abc…
// (or node_meta { instance_id = "…" } in its configuration).
const DefaultInstanceMeta = "instance_id"

// nodeTemplate is a checked Options.NodeName: the pattern a node name is
// matched against, and which of its groups are the instance id and name.
type nodeTemplate struct {
	re       *regexp.Regexp
	id, name int // group numbers, 0 when absent
}

// templatePart is a {{ id }} or {{ name }} of a NodeName template.
var templatePart = regexp.MustCompile(`\{\{\s*([^}]*?)\s*\}\}`)

// compileNodeName reads a NodeName template: node names with {{id}} (the
// instance id) and {{name}} (its Name tag) in them, like "{{id}}" or
// "{{name}}.node".
func compileNodeName(t string) (*nodeTemplate, error) {
	if t == "" {
		return nil, nil
	}
	nt := &nodeTemplate{}
	var b strings.Builder
	b.WriteString("^")
	last, group := 0, 0
	for _, m := range templatePart.FindAllStringSubmatchIndex(t, -1) {
		b.WriteString(regexp.QuoteMeta(t[last:m[0]]))
		last = m[1]
		group++
		switch t[m[2]:m[3]] {
		case "id":
			nt.id = group
		case "name":
			nt.name = group
		default:
			return nil, fmt.Errorf("consul: node_name %q holds {{%s}}; it may hold {{id}} (the instance id) and {{name}} (its Name tag), like {{id}} or {{name}}.node", t, t[m[2]:m[3]])
		}
		b.WriteString(`([A-Za-z0-9_.-]+?)`)
	}
	b.WriteString(regexp.QuoteMeta(t[last:]) + "$")
	if nt.id == 0 && nt.name == 0 {
		return nil, fmt.Errorf("consul: node_name %q holds neither {{id}} nor {{name}}, like {{id}} or {{name}}.node", t)
	}
	nt.re = regexp.MustCompile(b.String())
	return nt, nil
}

// Holdings lists the nodes of the catalog, each with the instance id its
// meta (InstanceMeta) or its name (NodeName) gives, its name and address:
// what a sweep checks against the cloud to find the nodes of instances
// that are gone. A node with neither is listed by its name, which the
// sweep matches against the instances' names.
func (c *Client) Holdings(ctx context.Context) ([]switchboard.Holding, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	nodes, qm, err := c.api.Catalog().Nodes((&api.QueryOptions{}).WithContext(ctx))
	if err == nil && qm.ResultsFilteredByACLs {
		err = errHidden
	}
	if err != nil {
		return nil, c.fail(ctx, err, "list the nodes")
	}
	var out []switchboard.Holding
	for _, n := range nodes {
		h := switchboard.Holding{System: "Consul", Item: "node " + n.Node, Name: n.Node, Instance: n.Meta[c.opts.InstanceMeta]}
		if c.nodeName != nil {
			if m := c.nodeName.re.FindStringSubmatch(n.Node); m != nil {
				if c.nodeName.id > 0 && h.Instance == "" {
					h.Instance = m[c.nodeName.id]
				}
				if c.nodeName.name > 0 {
					h.Name = m[c.nodeName.name]
				}
			}
		}
		if n.Address != "" {
			h.Addresses = []string{n.Address}
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b switchboard.Holding) int { return strings.Compare(a.Item, b.Item) })
	return out, nil
}
