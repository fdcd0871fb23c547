package chef

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/switchboardhq/switchboard"
)

// addressAttributes are the flattened automatic attributes Ohai reports an
// instance's addresses in: the primary address, and the ec2 plugin's.
var addressAttributes = []string{"ipaddress", "ec2_local_ipv4", "ec2_public_ipv4", "ec2_local_hostname", "ec2_public_hostname"}

// searchPage is how many nodes one search request returns.
const searchPage = 1000

// Holdings lists the nodes that carry an instance id in SearchAttribute,
// each with that id, its name and the addresses Ohai reported: what a sweep
// checks against the cloud to find the nodes of instances that are gone.
// Nodes without the attribute (not EC2 instances, or not yet converged)
// are not listed: chef_delete finds nodes by that id.
func (c *Client) Holdings(ctx context.Context) ([]switchboard.Holding, error) {
	var out []switchboard.Holding
	for start := 0; ; start += searchPage {
		q := url.Values{
			"q":     {c.opts.SearchAttribute + ":*"},
			"sort":  {"X_CHEF_id_CHEF_X asc"},
			"start": {strconv.Itoa(start)},
			"rows":  {strconv.Itoa(searchPage)},
		}
		var page struct {
			Total int               `json:"total"`
			Rows  []json.RawMessage `json:"rows"`
		}
		if err := c.do(ctx, http.MethodGet, "search/node?"+q.Encode(), &page); err != nil {
			return nil, c.fail(ctx, err, "list the nodes with "+c.opts.SearchAttribute)
		}
		for _, raw := range page.Rows {
			var n node
			if json.Unmarshal(raw, &n) != nil || n.Name == "" {
				continue
			}
			id := n.value(c.opts.SearchAttribute)
			if id == "" {
				continue
			}
			h := switchboard.Holding{System: "Chef", Item: "node " + n.Name, Instance: id, Name: n.Name}
			for _, attr := range addressAttributes {
				if v := n.value(attr); v != "" && !slices.Contains(h.Addresses, v) {
					h.Addresses = append(h.Addresses, v)
				}
			}
			out = append(out, h)
		}
		if len(page.Rows) == 0 || start+len(page.Rows) >= page.Total {
			// Not every server sorts as asked.
			slices.SortFunc(out, func(a, b switchboard.Holding) int { return strings.Compare(a.Name, b.Name) })
			return out, nil
		}
	}
}

// value returns the string at a flattened attribute of the node, the
// automatic attributes first, as Chef's precedence has them; "" when none.
func (n node) value(attr string) string {
	for _, m := range []map[string]any{n.Automatic, n.Override, n.Normal, n.Default} {
		for _, v := range flatValues(m, "", attr, nil) {
			if v != "" {
				return v
			}
		}
	}
	return ""
}
