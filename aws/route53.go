package aws

// Route53 cleanup after an instance dies: find the records that still point
// at it and delete those Switchboard owns.
//
// # Which records
//
// In each configured hosted zone, the A, AAAA and CNAME record sets whose
// values are the instance's addresses (A and AAAA: its private and public
// IPs; CNAME: its DNS names), and, with the name_pattern rule, the record
// set named after the instance's Name tag. Alias records point at AWS
// resources, not at instances, and are never touched.
//
// # Owner rules
//
// Only records Switchboard may own are deleted; a record found but not owned
// is reported in DNSResult.NotOwned with the reason, never changed. One rule
// is configured per DNS client:
//
//   - owner_txt (DNSOptions.OwnerTXT): a TXT record set at the record's
//     marker name holds a value whose comma-separated key=value pairs
//     include every pair of OwnerTXT. This is external-dns's TXT registry
//     convention: OwnerTXT "heritage=switchboard,switchboard/owner=prod"
//     matches the value "heritage=switchboard,switchboard/owner=prod" and
//     also "heritage=switchboard,switchboard/owner=prod,switchboard/resource=i-0abc"
//     (extra pairs are allowed), not "heritage=switchboard,switchboard/owner=test".
//     The marker name is DNSOptions.OwnerTXTName rendered for the record:
//     "{{name}}" (the default) is the record's own name, "_owner.{{name}}"
//     a prefixed name, and "{{type}}-{{name}}" external-dns's current
//     format ("a-web-7.example.com" marks the A record web-7.example.com; with
//     external-dns's --txt-prefix=P, write "P{{type}}-{{name}}"). A CNAME
//     cannot share its name with a TXT record, so CNAMEs need a prefixed
//     marker name. The marker is deleted in the same change batch as the
//     records it marks once none of them is left; when its TXT record set
//     also holds other values, only the owner value is removed from it.
//   - name_pattern (DNSOptions.NamePattern): the record's name is the
//     pattern with {{name}} replaced by the instance's Name tag, like
//     "{{name}}.internal.example.com". When Switchboard knows addresses of
//     the record's kind (IPs for A and AAAA, hostnames for CNAME), the record
//     must also point at the instance: a record of that name pointing
//     elsewhere most likely belongs to a replacement that took the name, and
//     is reported instead.
//
// Under either rule a record set that holds addresses of the instance and
// others (round robin) is reported, never changed.
//
// # Rate and batches
//
// Route53 allows five API requests a second per account, and rejects a
// change to a hosted zone while the previous one is pending
// (PriorRequestNotComplete). Every request of a DNS client waits for a token
// of one bucket (DNSOptions.RequestsPerSecond, 5 by default), and the
// deletions in one hosted zone go in one change batch. Two DNS clients for
// one account do not share their bucket: configure one per account.
//
// # Already gone
//
// Route53 refuses a change batch that deletes a record set that is not there
// (InvalidChangeBatch, "Tried to delete resource record set [...] but it was
// not found"); moto answers success. A record that is not there counts as
// already deleted: the batch is sent again without it, and the record is
// reported in DNSResult.Absent. When a record changed between listing and
// deleting ("the values provided do not match"), the zone is listed again.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/smithy-go"
	"golang.org/x/time/rate"

	"github.com/switchboardhq/switchboard"
)

// DefaultRequestsPerSecond is Route53's API rate limit per account.
const DefaultRequestsPerSecond = 5

// route53Region is where Route53's global endpoint signs requests.
const route53Region = "us-east-1"

// DNSOptions configure a DNS client: the AWS account (as for EC2), the hosted
// zones to clean up and the rule that says which records Switchboard owns.
type DNSOptions struct {
	// Options are the account's: credentials, endpoint (moto), HTTP client,
	// SDK retries. Route53 is global, so Region may be empty (us-east-1).
	Options
	// Zones are the hosted zones to clean up, by id (Z0123456789ABCDEFGHIJ,
	// or /hostedzone/Z0123...) or by domain name (internal.example.com; a
	// name is looked up on first use, and stands for every hosted zone of
	// that name, the public and the private of a split horizon). Ids are
	// better: a name costs a ListHostedZonesByName call, which IAM cannot
	// limit to the zones, and `aws-policy` needs ids.
	Zones []string
	// OwnerTXT is the owner_txt rule: the key=value pairs a TXT marker must
	// hold, like "heritage=switchboard,switchboard/owner=prod". See the
	// file comment for the convention.
	OwnerTXT string
	// OwnerTXTName is where the marker of a record is, as a template of
	// {{name}} (the record's name) and {{type}} (its type, lower case),
	// ending with {{name}}; default "{{name}}".
	OwnerTXTName string
	// NamePattern is the name_pattern rule: the name of the instance's
	// record as a template of {{name}}, the instance's Name tag, like
	// "{{name}}.internal.example.com".
	NamePattern string
	// RequestsPerSecond paces every Route53 request of the client; default
	// DefaultRequestsPerSecond.
	RequestsPerSecond float64
}

// WithDefaults returns the options with every unset default filled in.
func (o DNSOptions) WithDefaults() DNSOptions {
	if o.Region == "" {
		o.Region = route53Region
	}
	if o.OwnerTXT != "" && o.OwnerTXTName == "" {
		o.OwnerTXTName = "{{name}}"
	}
	if o.RequestsPerSecond == 0 {
		o.RequestsPerSecond = DefaultRequestsPerSecond
	}
	return o
}

var (
	zoneIDPattern = regexp.MustCompile(`^[A-Z0-9]{1,32}$`)
	// placeholder is a {{ name }} or {{ type }} of a template.
	placeholder = regexp.MustCompile(`\{\{\s*([^}]*?)\s*\}\}`)
	// dnsChars are what a name template may hold besides its
	// placeholders: letters, digits, '-', '_', '.' and a leading '*'.
	dnsChars = regexp.MustCompile(`^[A-Za-z0-9_.*-]*$`)
)

// Validate reports every option that is wrong, naming its configuration key
// and how to fix it.
func (o DNSOptions) Validate() error {
	var errs []error
	for _, err := range o.loader().Check() {
		errs = append(errs, fmt.Errorf("route53: %w", err))
	}
	if o.RetryMaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("route53: RetryMaxAttempts is %d; use 1 for no retries or 0 for the default", o.RetryMaxAttempts))
	}
	if len(o.Zones) == 0 {
		errs = append(errs, errors.New("route53: zones is empty: list the hosted zones to clean up, by id (Z0123456789ABCDEFGHIJ) or name (internal.example.com)"))
	}
	for _, z := range o.Zones {
		if _, _, ok := parseZone(z); !ok {
			errs = append(errs, fmt.Errorf("route53: zones: %q is neither a hosted zone id (like Z0123456789ABCDEFGHIJ) nor a domain name (like internal.example.com)", z))
		}
	}
	switch {
	case o.OwnerTXT == "" && o.NamePattern == "":
		errs = append(errs, errors.New("route53: no owner rule: set owner_txt (the TXT marker of Switchboard's records, like heritage=switchboard,switchboard/owner=prod) or name_pattern (like {{name}}.internal.example.com), so that Switchboard deletes only its own records"))
	case o.OwnerTXT != "" && o.NamePattern != "":
		errs = append(errs, errors.New("route53: owner_txt and name_pattern are both set: choose one owner rule"))
	case o.OwnerTXT != "":
		if len(ownerLabels(o.OwnerTXT)) == 0 {
			errs = append(errs, fmt.Errorf("route53: owner_txt %q holds no key=value pair, like heritage=switchboard,switchboard/owner=prod", o.OwnerTXT))
		}
		if o.OwnerTXTName != "" {
			if err := checkTemplate(o.OwnerTXTName, "name", "type"); err != nil {
				errs = append(errs, fmt.Errorf("route53: owner_txt_name %q %v, like {{name}}, _owner.{{name}} or {{type}}-{{name}}", o.OwnerTXTName, err))
			} else if !placeholderAtEnd(o.OwnerTXTName, "name") {
				errs = append(errs, fmt.Errorf("route53: owner_txt_name %q must end with {{name}}, so that the marker is in the record's zone, like _owner.{{name}}", o.OwnerTXTName))
			}
		}
	case o.NamePattern != "":
		if err := checkTemplate(o.NamePattern, "name"); err != nil {
			errs = append(errs, fmt.Errorf("route53: name_pattern %q %v, like {{name}}.internal.example.com", o.NamePattern, err))
		}
	}
	if o.OwnerTXTName != "" && o.OwnerTXT == "" {
		errs = append(errs, errors.New("route53: owner_txt_name is set without owner_txt"))
	}
	if o.RequestsPerSecond < 0 {
		errs = append(errs, fmt.Errorf("route53: requests_per_second is %v; Route53 allows %d a second per account", o.RequestsPerSecond, DefaultRequestsPerSecond))
	}
	return errors.Join(errs...)
}

// checkTemplate says what is wrong with a name template whose placeholders
// may be names, and which must hold the first of them.
func checkTemplate(t string, names ...string) error {
	found := false
	for _, m := range placeholder.FindAllStringSubmatch(t, -1) {
		if !slices.Contains(names, m[1]) {
			return fmt.Errorf("holds {{%s}}, which is not one of {{%s}}", m[1], strings.Join(names, "}}, {{"))
		}
		found = found || m[1] == names[0]
	}
	if !found {
		return fmt.Errorf("does not hold {{%s}}", names[0])
	}
	if !dnsChars.MatchString(placeholder.ReplaceAllString(t, "x")) {
		return errors.New("holds characters a DNS name cannot (letters, digits, '-', '_' and '.')")
	}
	return nil
}

func placeholderAtEnd(t, name string) bool {
	ms := placeholder.FindAllStringSubmatchIndex(t, -1)
	if len(ms) == 0 {
		return false
	}
	last := ms[len(ms)-1]
	return last[1] == len(t) && t[last[2]:last[3]] == name
}

// render replaces the placeholders of a checked template.
func render(t string, values map[string]string) string {
	return placeholder.ReplaceAllStringFunc(t, func(m string) string {
		return values[placeholder.FindStringSubmatch(m)[1]]
	})
}

// parseZone reads a configured zone: an id (with or without /hostedzone/)
// or a domain name, normalized.
func parseZone(s string) (id, name string, ok bool) {
	s = strings.TrimSpace(s)
	if id := strings.TrimPrefix(s, "/hostedzone/"); zoneIDPattern.MatchString(id) {
		return id, "", true
	}
	if !strings.Contains(strings.TrimSuffix(s, "."), ".") && !strings.HasSuffix(s, ".") {
		return "", "", false
	}
	n := fqdn(s)
	for l := range strings.SplitSeq(strings.TrimSuffix(n, "."), ".") {
		if l == "" || !dnsChars.MatchString(l) {
			return "", "", false
		}
	}
	return "", n, true
}

// DNS deletes the records of dead instances from Route53 hosted zones. It is
// safe for concurrent use; its requests share one rate bucket.
type DNS struct {
	r53   *route53.Client
	opts  DNSOptions
	limit *rate.Limiter
	where string
	// pageSize is the MaxItems of a record listing; 0 means Route53's
	// 300. Tests make it small.
	pageSize int32

	mu    sync.Mutex
	zones []string // resolved ids, once looked up
}

// NewDNS returns a DNS client for opts. Like New, it makes no API call: zone
// names are looked up on first use.
func NewDNS(ctx context.Context, opts DNSOptions) (*DNS, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cfg, err := sdkConfig(ctx, opts.Options)
	if err != nil {
		return nil, err
	}
	client := route53.NewFromConfig(cfg, func(o *route53.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = awssdk.String(opts.Endpoint)
		}
	})
	where := "Route53"
	if opts.Endpoint != "" {
		where = "Route53 at " + opts.Endpoint
	}
	return &DNS{r53: client, opts: opts, where: where, limit: rate.NewLimiter(rate.Limit(opts.RequestsPerSecond), 1)}, nil
}

// DNSTarget is the instance whose records CleanupDNS removes.
type DNSTarget struct {
	// Name is the instance's Name tag, for the name_pattern rule.
	Name string
	// IPs are its addresses, private and public; empty strings are
	// skipped (an instance without a public IP).
	IPs []string
	// Hostnames are its DNS names (private DNS, like
	// ip-10-0-0-5.ec2.internal), which CNAME records point at.
	Hostnames []string
}

// Record is one record set CleanupDNS found.
type Record struct {
	// Zone is the id of the hosted zone.
	Zone string `json:"zone"`
	// Name is the record's name without the final dot.
	Name string `json:"name"`
	Type string `json:"type"`
	// SetIdentifier tells apart the record sets of one name and type with
	// a routing policy (weighted, latency...).
	SetIdentifier string   `json:"set_identifier,omitempty"`
	Values        []string `json:"values"`
	// Marker is set on an owner TXT record removed with the records it
	// marked.
	Marker bool `json:"marker,omitempty"`
	// Reason says why a record is not owned.
	Reason string `json:"reason,omitempty"`
}

// String names the record as a person reads it: "web-7.example.com A",
// with the set identifier in brackets when it has one.
func (r Record) String() string {
	s := r.Name + " " + r.Type
	if r.SetIdentifier != "" {
		s += " [" + r.SetIdentifier + "]"
	}
	return s
}

// DNSResult is what CleanupDNS did, or would do in a dry run.
type DNSResult struct {
	// Deleted are the records deleted (in a dry run, that would be),
	// owner markers included.
	Deleted []Record
	// NotOwned are records that point at the instance, or carry its name,
	// that the owner rule does not give to Switchboard: left alone.
	NotOwned []Record
	// Absent are records that were gone by the time Switchboard deleted
	// them.
	Absent []Record
	DryRun bool
}

// Summary says what the result removed, for a channel report: "2 DNS
// records", "would remove 2 DNS records", "no DNS records", with the records
// left alone after it.
func (r DNSResult) Summary() string {
	var s string
	switch n := len(r.Deleted); n {
	case 0:
		s = "no DNS records"
	case 1:
		s = "1 DNS record"
	default:
		s = strconv.Itoa(n) + " DNS records"
	}
	if r.DryRun {
		s = "would remove " + s
	}
	if n := len(r.NotOwned); n > 0 {
		names := make([]string, n)
		for i, rec := range r.NotOwned {
			names[i] = rec.String()
		}
		what := "records"
		if n == 1 {
			what = "record"
		}
		s += fmt.Sprintf("; left %d %s Switchboard does not own: %s", n, what, strings.Join(names, ", "))
	}
	return s
}

// CleanupDNS deletes the target's records that Switchboard owns from every
// configured hosted zone, in one change batch per zone, and reports the ones
// it does not own. What is already gone counts as deleted, so it is safe to
// repeat. In a dry run it changes nothing and reports what it would delete.
// On an error the result holds what was done in the zones before it.
func (d *DNS) CleanupDNS(ctx context.Context, target DNSTarget, dryRun bool) (DNSResult, error) {
	res := DNSResult{DryRun: dryRun}
	t, err := d.target(target)
	if err != nil {
		return res, err
	}
	zones, err := d.resolveZones(ctx)
	if err != nil {
		return res, err
	}
	for _, z := range zones {
		if err := d.cleanupZone(ctx, z, t, dryRun, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// target is a DNSTarget normalized for matching.
type target struct {
	label   string // names the instance in errors and comments
	ips     map[netip.Addr]bool
	hosts   map[string]bool
	pattern string // the record name name_pattern gives the instance, or ""
}

func (d *DNS) target(in DNSTarget) (target, error) {
	t := target{ips: map[netip.Addr]bool{}, hosts: map[string]bool{}}
	for _, s := range in.IPs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return t, switchboard.Errorf(switchboard.EINVALID, "%q is not an IP address, so no DNS record was deleted.", s)
		}
		t.ips[ip.Unmap()] = true
	}
	for _, s := range in.Hostnames {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.ContainsAny(s, " \t/:") {
			return t, switchboard.Errorf(switchboard.EINVALID, "%q is not a host name, so no DNS record was deleted.", s)
		}
		t.hosts[fqdn(s)] = true
	}
	name := strings.TrimSpace(in.Name)
	if d.opts.NamePattern != "" && name != "" {
		t.pattern = fqdn(render(d.opts.NamePattern, map[string]string{"name": name}))
	}
	switch {
	case name != "":
		t.label = name
	case len(in.IPs) > 0:
		t.label = strings.Join(in.IPs, ", ")
	default:
		t.label = strings.Join(in.Hostnames, ", ")
	}
	if len(t.ips) == 0 && len(t.hosts) == 0 && t.pattern == "" {
		if d.opts.NamePattern != "" {
			return t, switchboard.Errorf(switchboard.EINVALID, "Which records? The instance's name, IPs and host names are all empty.")
		}
		return t, switchboard.Errorf(switchboard.EINVALID, "Which records? The instance's IPs and host names are empty, and with the owner_txt rule Switchboard finds records by the addresses they point at.")
	}
	return t, nil
}

// resolveZones returns the ids of the configured zones, looking names up
// the first time.
func (d *DNS) resolveZones(ctx context.Context) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.zones != nil {
		return d.zones, nil
	}
	var ids []string
	for _, z := range d.opts.Zones {
		id, name, _ := parseZone(z)
		if id != "" {
			ids = append(ids, id)
			continue
		}
		found, err := d.zonesNamed(ctx, name)
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, switchboard.Errorf(switchboard.EINVALID, "%s has no hosted zone named %s that Switchboard's credentials can see: check the zones of the route53 configuration.", d.where, strings.TrimSuffix(name, "."))
		}
		ids = append(ids, found...)
	}
	slices.Sort(ids)
	d.zones = slices.Compact(ids)
	return d.zones, nil
}

// zonesNamed returns the ids of the hosted zones called name.
func (d *DNS) zonesNamed(ctx context.Context, name string) ([]string, error) {
	in := &route53.ListHostedZonesByNameInput{DNSName: awssdk.String(name)}
	var ids []string
	for {
		if err := d.wait(ctx); err != nil {
			return nil, err
		}
		out, err := d.r53.ListHostedZonesByName(ctx, in)
		if err != nil {
			return nil, d.fail(ctx, err, "look up hosted zone "+strings.TrimSuffix(name, "."), "route53:ListHostedZonesByName", "")
		}
		// Zones come sorted by name from DNSName on: the first of another
		// name ends the ones sought.
		for _, z := range out.HostedZones {
			if fqdn(awssdk.ToString(z.Name)) != name {
				return ids, nil
			}
			ids = append(ids, strings.TrimPrefix(awssdk.ToString(z.Id), "/hostedzone/"))
		}
		if !out.IsTruncated {
			return ids, nil
		}
		in.DNSName, in.HostedZoneId = out.NextDNSName, out.NextHostedZoneId
	}
}

func (d *DNS) wait(ctx context.Context) error {
	if err := d.limit.Wait(ctx); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("route53: %w", ctxErr)
		}
		// The context ends before the next token: as transient as a
		// timeout.
		return fmt.Errorf("route53: wait for the request rate: %w", err)
	}
	return nil
}

// listZone returns every record set of a hosted zone.
func (d *DNS) listZone(ctx context.Context, zone string) ([]types.ResourceRecordSet, error) {
	in := &route53.ListResourceRecordSetsInput{HostedZoneId: awssdk.String(zone)}
	if d.pageSize > 0 {
		in.MaxItems = awssdk.Int32(d.pageSize)
	}
	var sets []types.ResourceRecordSet
	pages := route53.NewListResourceRecordSetsPaginator(d.r53, in)
	for pages.HasMorePages() {
		if err := d.wait(ctx); err != nil {
			return nil, err
		}
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, d.fail(ctx, err, "list the records of hosted zone "+zone, "route53:ListResourceRecordSets", zone)
		}
		sets = append(sets, page.ResourceRecordSets...)
	}
	return sets, nil
}

// rrKey identifies a record set in a zone, as InvalidChangeBatch names it.
type rrKey struct{ name, typ, setID string }

func keyOf(s types.ResourceRecordSet) rrKey {
	return rrKey{fqdn(awssdk.ToString(s.Name)), string(s.Type), awssdk.ToString(s.SetIdentifier)}
}

// change is one change of a zone's batch and the record it reports.
type change struct {
	change types.Change
	rec    Record
	key    rrKey
}

// zonePlan is what to do in one zone.
type zonePlan struct {
	changes  []change
	notOwned []Record
}

// plan decides, from a zone's record sets, which to delete and which to
// report.
func (d *DNS) plan(zone string, sets []types.ResourceRecordSet, t target) zonePlan {
	var p zonePlan
	txt := map[string]types.ResourceRecordSet{}
	for _, s := range sets {
		if s.Type == types.RRTypeTxt && awssdk.ToString(s.SetIdentifier) == "" {
			txt[fqdn(awssdk.ToString(s.Name))] = s
		}
	}
	owned := map[rrKey]bool{}
	var markers []string // marker names of owned records, in order
	for _, s := range sets {
		if s.Type != types.RRTypeA && s.Type != types.RRTypeAaaa && s.Type != types.RRTypeCname {
			continue
		}
		rec := record(zone, s)
		name := fqdn(awssdk.ToString(s.Name))
		byName := t.pattern != "" && name == t.pattern
		if s.AliasTarget != nil {
			if byName {
				rec.Values = []string{"alias to " + strings.TrimSuffix(awssdk.ToString(s.AliasTarget.DNSName), ".")}
				rec.Reason = "an alias record, which points at an AWS resource rather than an instance"
				p.notOwned = append(p.notOwned, rec)
			}
			continue
		}
		mine, others := t.split(s)
		if len(mine) == 0 && !byName {
			continue
		}
		switch {
		case len(mine) > 0 && len(others) > 0:
			rec.Reason = "it also points at " + strings.Join(others, ", ") + ", which are not the instance's"
		case d.opts.NamePattern != "" && !byName:
			if t.pattern == "" {
				rec.Reason = "its name does not follow name_pattern " + d.opts.NamePattern + " (the instance's name is not known)"
			} else {
				rec.Reason = "its name does not follow name_pattern " + d.opts.NamePattern + " (" + strings.TrimSuffix(t.pattern, ".") + ")"
			}
		case d.opts.NamePattern != "" && len(mine) == 0 && t.knows(s.Type):
			rec.Reason = "it carries the instance's name but points at " + strings.Join(others, ", ") + ", not at the instance (a replacement's record?)"
		case d.opts.OwnerTXT != "":
			m := d.markerName(name, s.Type)
			set, ok := txt[m]
			switch {
			case !ok:
				rec.Reason = "there is no owner TXT record at " + strings.TrimSuffix(m, ".")
			case len(ownerValues(set, d.opts.OwnerTXT)) == 0:
				rec.Reason = "the TXT record at " + strings.TrimSuffix(m, ".") + " does not hold " + d.opts.OwnerTXT
			default:
				if !slices.Contains(markers, m) {
					markers = append(markers, m)
				}
			}
		}
		if rec.Reason != "" {
			p.notOwned = append(p.notOwned, rec)
			continue
		}
		owned[keyOf(s)] = true
		p.changes = append(p.changes, change{
			change: types.Change{Action: types.ChangeActionDelete, ResourceRecordSet: &s},
			rec:    rec, key: keyOf(s),
		})
	}

	// A marker goes when no record it marks is left.
	for _, m := range markers {
		left := slices.ContainsFunc(sets, func(s types.ResourceRecordSet) bool {
			return (s.Type == types.RRTypeA || s.Type == types.RRTypeAaaa || s.Type == types.RRTypeCname) &&
				d.markerName(fqdn(awssdk.ToString(s.Name)), s.Type) == m && !owned[keyOf(s)]
		})
		if left {
			continue
		}
		set := txt[m]
		rec := record(zone, set)
		rec.Marker = true
		mine := ownerValues(set, d.opts.OwnerTXT)
		rec.Values = mine
		c := change{rec: rec, key: keyOf(set)}
		if len(mine) == len(set.ResourceRecords) {
			c.change = types.Change{Action: types.ChangeActionDelete, ResourceRecordSet: &set}
		} else {
			// Other values (a site verification, another owner's
			// marker) share the TXT record set: keep them.
			rest := set
			rest.ResourceRecords = slices.DeleteFunc(slices.Clone(set.ResourceRecords), func(r types.ResourceRecord) bool {
				return slices.Contains(mine, awssdk.ToString(r.Value))
			})
			c.change = types.Change{Action: types.ChangeActionUpsert, ResourceRecordSet: &rest}
		}
		p.changes = append(p.changes, c)
	}
	return p
}

// split returns the values of an A, AAAA or CNAME record set that are the
// target's addresses, and the others.
func (t target) split(s types.ResourceRecordSet) (mine, others []string) {
	for _, r := range s.ResourceRecords {
		v := awssdk.ToString(r.Value)
		is := false
		if s.Type == types.RRTypeCname {
			is = t.hosts[fqdn(v)]
		} else if ip, err := netip.ParseAddr(v); err == nil {
			is = t.ips[ip.Unmap()]
		}
		if is {
			mine = append(mine, v)
		} else {
			others = append(others, v)
		}
	}
	return mine, others
}

// knows reports whether the target has addresses a record of type typ
// could point at.
func (t target) knows(typ types.RRType) bool {
	if typ == types.RRTypeCname {
		return len(t.hosts) > 0
	}
	return len(t.ips) > 0
}

func (d *DNS) markerName(name string, typ types.RRType) string {
	return fqdn(render(d.opts.OwnerTXTName, map[string]string{"name": name, "type": strings.ToLower(string(typ))}))
}

func record(zone string, s types.ResourceRecordSet) Record {
	r := Record{
		Zone: zone, Name: strings.TrimSuffix(fqdn(awssdk.ToString(s.Name)), "."), Type: string(s.Type),
		SetIdentifier: awssdk.ToString(s.SetIdentifier), Values: []string{},
	}
	for _, v := range s.ResourceRecords {
		r.Values = append(r.Values, awssdk.ToString(v.Value))
	}
	return r
}

// cleanupZone deletes the target's owned records from one zone, adding to
// res what it did.
func (d *DNS) cleanupZone(ctx context.Context, zone string, t target, dryRun bool, res *DNSResult) error {
	var absent []Record
	for round := 1; ; round++ {
		sets, err := d.listZone(ctx, zone)
		if err != nil {
			return err
		}
		p := d.plan(zone, sets, t)
		changes := p.changes
		changed := false
		for len(changes) > 0 && !dryRun {
			err := d.changeBatch(ctx, zone, changes, t)
			if err == nil {
				break
			}
			gone, stale, ok := batchProblems(err)
			if !ok {
				return d.fail(ctx, err, "delete "+countRecords(len(changes))+" from hosted zone "+zone, "route53:ChangeResourceRecordSets", zone)
			}
			if stale {
				changed = true
				break
			}
			kept := changes[:0:0]
			for _, c := range changes {
				if slices.Contains(gone, c.key) {
					absent = append(absent, c.rec)
				} else {
					kept = append(kept, c)
				}
			}
			if len(kept) == len(changes) {
				// Route53 says something is missing, but nothing we
				// asked to delete: do not loop.
				return d.fail(ctx, err, "delete "+countRecords(len(changes))+" from hosted zone "+zone, "route53:ChangeResourceRecordSets", zone)
			}
			changes = kept
		}
		if changed {
			if round < 3 {
				continue
			}
			return fmt.Errorf("route53 hosted zone %s: %w", zone, switchboard.Errorf(switchboard.ECONFLICT,
				"The records of %s in hosted zone %s kept changing while Switchboard deleted them; nothing more was deleted there.", t.label, zone))
		}
		for _, c := range changes {
			res.Deleted = append(res.Deleted, c.rec)
		}
		res.NotOwned = append(res.NotOwned, p.notOwned...)
		res.Absent = append(res.Absent, absent...)
		return nil
	}
}

// changeBatch sends one zone's changes in one batch.
func (d *DNS) changeBatch(ctx context.Context, zone string, changes []change, t target) error {
	batch := &types.ChangeBatch{Comment: awssdk.String(truncate("Switchboard: cleanup after "+t.label, 256))}
	for _, c := range changes {
		batch.Changes = append(batch.Changes, c.change)
	}
	if err := d.wait(ctx); err != nil {
		return err
	}
	_, err := d.r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: awssdk.String(zone), ChangeBatch: batch})
	return err
}

var (
	// notFound and staleValues are Route53's InvalidChangeBatch messages
	// for a deletion of a record set that is not there, and of one whose
	// values changed.
	notFound    = regexp.MustCompile(`Tried to delete resource record set \[name='([^']*)', type='([^']*)'(?:, set-identifier='([^']*)')?\] but it was not found`)
	staleValues = regexp.MustCompile(`Tried to delete resource record set \[[^\]]*\] but the values provided do not match the current values`)
	// batchNoise is what InvalidChangeBatch messages hold besides those.
	batchNoise = regexp.MustCompile(`ChangeBatch errors occurred|[\[\],.\s]`)
)

// batchProblems reads an InvalidChangeBatch: the record sets that were not
// there, and whether some had changed. ok is false for any other error,
// and for a batch refused for other reasons too.
func batchProblems(err error) (gone []rrKey, stale, ok bool) {
	var texts []string
	var icb *types.InvalidChangeBatch
	var api smithy.APIError
	switch {
	case errors.As(err, &icb):
		// The <InvalidChangeBatch><Messages> answer, or an
		// <ErrorResponse> with the code, where Message says it all.
		texts = append(slices.Clone(icb.Messages), awssdk.ToString(icb.Message))
	case errors.As(err, &api) && api.ErrorCode() == "InvalidChangeBatch":
		texts = []string{api.ErrorMessage()}
	default:
		return nil, false, false
	}
	for _, text := range texts {
		for _, m := range notFound.FindAllStringSubmatch(text, -1) {
			gone = append(gone, rrKey{fqdn(m[1]), m[2], m[3]})
		}
		stale = stale || staleValues.MatchString(text)
		rest := staleValues.ReplaceAllString(notFound.ReplaceAllString(text, ""), "")
		if batchNoise.ReplaceAllString(rest, "") != "" {
			return nil, false, false
		}
	}
	return gone, stale, len(gone) > 0 || stale
}

// fail turns a failed Route53 call into the domain's error, with a sentence
// a person can act on: ETHROTTLED for Throttling and PriorRequestNotComplete
// (the step parks and tries again), EUNAVAILABLE when Route53 did not answer
// or failed, EFORBIDDEN naming the permission, the rest refused for good.
// action says what was asked ("list the records of hosted zone Z1"),
// permission the IAM action it needs, zone the hosted zone it is on.
func (d *DNS) fail(ctx context.Context, err error, action, permission, zone string) error {
	if ctxErr := ctx.Err(); ctxErr != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("route53 %s: %w", action, ctxErr)
	}
	ce := cloudError(err, nil, d.where)
	said := ce.Code + ": " + strings.TrimSuffix(ce.Message, ".")
	switch ce.Code {
	case "PriorRequestNotComplete":
		ce.Kind = switchboard.ETHROTTLED
	case "NoSuchHostedZone":
		ce.Kind = switchboard.ENOTFOUND
	}
	var e *switchboard.Error
	switch ce.Kind {
	case switchboard.ETHROTTLED:
		e = switchboard.Errorf(switchboard.ETHROTTLED, "%s asked Switchboard to slow down (%s) when asked to %s; Switchboard will try again.", d.where, said, action)
		e.RetryAfter = ce.RetryAfter
	case switchboard.EUNAVAILABLE:
		e = switchboard.Errorf(switchboard.EUNAVAILABLE, "%s failed to %s (%s); Switchboard will try again.", d.where, action, said)
	case switchboard.EFORBIDDEN:
		if ce.Code == "NoCredentials" {
			e = switchboard.Errorf(switchboard.EFORBIDDEN, "%s.", strings.TrimSuffix(ce.Message, "."))
			break
		}
		resource := "*"
		if zone != "" {
			resource = "arn:aws:route53:::hostedzone/" + zone
		}
		e = switchboard.Errorf(switchboard.EFORBIDDEN, "%s did not let Switchboard %s (%s): its AWS credentials need %s on %s; `switchboard aws-policy` prints a policy that allows it.",
			d.where, action, said, permission, resource)
	case switchboard.ENOTFOUND:
		e = switchboard.Errorf(switchboard.ENOTFOUND, "%s could not %s (%s): check the zones of the route53 configuration.", d.where, action, said)
	default:
		e = switchboard.Errorf(ce.Kind, "%s refused to %s (%s).", d.where, action, said)
	}
	return fmt.Errorf("route53 %s: %w", action, e)
}

// ownerLabels reads a TXT owner value as its key=value pairs; nil when it
// holds none.
func ownerLabels(v string) map[string]string {
	labels := map[string]string{}
	for part := range strings.SplitSeq(txtText(v), ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || strings.TrimSpace(k) == "" {
			continue
		}
		labels[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	if len(labels) == 0 {
		return nil
	}
	return labels
}

// ownerValues returns the values of a TXT record set that are owner
// markers for owner: they hold every key=value pair of it.
func ownerValues(set types.ResourceRecordSet, owner string) []string {
	want := ownerLabels(owner)
	var out []string
	for _, r := range set.ResourceRecords {
		v := awssdk.ToString(r.Value)
		have := ownerLabels(v)
		match := len(want) > 0
		for k, val := range want {
			if hv, ok := have[k]; !ok || hv != val {
				match = false
				break
			}
		}
		if match {
			out = append(out, v)
		}
	}
	return out
}

// txtText is the text of a TXT value as Route53 holds it: its quoted
// character strings ("a" "b") unquoted and joined, \" \\ and \ddd escapes
// decoded. A value without quotes is taken as it is.
func txtText(v string) string {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, `"`) {
		return v
	}
	var b strings.Builder
	in := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"':
			in = !in
		case !in:
			// the space between character strings
		case c == '\\' && i+4 <= len(v) && octal(v[i+1:i+4]) >= 0:
			b.WriteByte(byte(octal(v[i+1 : i+4])))
			i += 3
		case c == '\\' && i+1 < len(v):
			b.WriteByte(v[i+1])
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// octal returns the byte a \ddd escape stands for, or -1.
func octal(ddd string) int {
	n, err := strconv.ParseUint(ddd, 8, 8)
	if err != nil {
		return -1
	}
	return int(n)
}

// fqdn normalizes a DNS name for comparison: lower case, Route53's \ddd
// escapes (octal: \052 is '*') decoded, with the final dot.
func fqdn(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if strings.Contains(s, `\`) {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] == '\\' && i+4 <= len(s) && octal(s[i+1:i+4]) >= 0 {
				b.WriteByte(byte(octal(s[i+1 : i+4])))
				i += 3
				continue
			}
			b.WriteByte(s[i])
		}
		s = b.String()
	}
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

func countRecords(n int) string {
	if n == 1 {
		return "1 record"
	}
	return strconv.Itoa(n) + " records"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
