package aws

import (
	"context"
	"regexp"
	"slices"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/switchboardhq/switchboard"
)

// Holdings lists the A, AAAA and CNAME records of the configured hosted
// zones that Switchboard owns by its owner rule, each with the addresses it
// points at (and, with name_pattern, the instance name its name carries):
// what a sweep checks against the cloud to find the records of instances
// that are gone. Records it does not own are not listed: cleanup would
// leave them anyway. One listing per zone, paced like every request.
func (d *DNS) Holdings(ctx context.Context) ([]switchboard.Holding, error) {
	zones, err := d.resolveZones(ctx)
	if err != nil {
		return nil, err
	}
	var pattern *regexp.Regexp
	if d.opts.NamePattern != "" {
		pattern = namePatternRegexp(d.opts.NamePattern)
	}
	var out []switchboard.Holding
	for _, zone := range zones {
		sets, err := d.listZone(ctx, zone)
		if err != nil {
			return nil, err
		}
		txt := map[string]types.ResourceRecordSet{}
		for _, s := range sets {
			if s.Type == types.RRTypeTxt && awssdk.ToString(s.SetIdentifier) == "" {
				txt[fqdn(awssdk.ToString(s.Name))] = s
			}
		}
		for _, s := range sets {
			if (s.Type != types.RRTypeA && s.Type != types.RRTypeAaaa && s.Type != types.RRTypeCname) || s.AliasTarget != nil {
				continue
			}
			name := fqdn(awssdk.ToString(s.Name))
			rec := record(zone, s)
			h := switchboard.Holding{System: "Route53", Item: rec.String(), Addresses: rec.Values}
			switch {
			case pattern != nil:
				m := pattern.FindStringSubmatch(name)
				if m == nil {
					continue
				}
				h.Name = m[1]
			default:
				set, ok := txt[d.markerName(name, s.Type)]
				if !ok || len(ownerValues(set, d.opts.OwnerTXT)) == 0 {
					continue
				}
			}
			for i, v := range h.Addresses {
				if s.Type == types.RRTypeCname {
					h.Addresses[i] = strings.TrimSuffix(v, ".")
				}
			}
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b switchboard.Holding) int { return strings.Compare(a.Item, b.Item) })
	return out, nil
}

// namePatternRegexp matches the record names a checked name_pattern gives,
// the instance's name in its first group.
func namePatternRegexp(pattern string) *regexp.Regexp {
	p := fqdn(pattern)
	var b strings.Builder
	b.WriteString("^")
	last := 0
	for _, m := range placeholder.FindAllStringIndex(p, -1) {
		b.WriteString(regexp.QuoteMeta(p[last:m[0]]))
		b.WriteString(`(.+?)`)
		last = m[1]
	}
	b.WriteString(regexp.QuoteMeta(p[last:]) + "$")
	return regexp.MustCompile(b.String())
}
