package aws

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/switchboardhq/switchboard"
	"github.com/switchboardhq/switchboard/testenv"
)

// Route53 in moto is global (one state per account, whatever the region),
// so every test makes hosted zones of its own name, and the Route53 tests
// share one of the regions testenv.Moto hands out, of which there are few.

var route53Moto struct {
	once     sync.Once
	endpoint string
}

// motoEndpoint returns the shared moto's endpoint for Route53 tests.
func motoEndpoint(t *testing.T) string {
	t.Helper()
	route53Moto.once.Do(func() { route53Moto.endpoint, _ = testenv.Moto(t) })
	if route53Moto.endpoint == "" {
		// moto is missing or did not start: testenv skips or fails this
		// test as it did the first, without using up a region.
		testenv.Moto(t)
	}
	return route53Moto.endpoint
}

var zoneSeq atomic.Int64

// testZoneName returns a zone name no other test uses.
func testZoneName(t *testing.T) string {
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	return fmt.Sprintf("%s-%d-%d.example.com.", strings.Trim(name, "-"), time.Now().UnixNano()%1e6, zoneSeq.Add(1))
}

// countChanges puts a proxy in front of endpoint that counts the change
// batches going through it. (A counting http.Client would do, but the SDK
// refuses a plain one when AWS_CA_BUNDLE is set.)
func countChanges(t *testing.T, endpoint string) (string, *atomic.Int64) {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	n := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isChange(r) {
			n.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, n
}

// isChange reports whether r is a ChangeResourceRecordSets request.
func isChange(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "/rrset")
}

// dnsBundle is a DNS client on moto with what a test checks it with.
type dnsBundle struct {
	dns     *DNS
	raw     *route53.Client // straight to moto, for setup and checks
	changes *atomic.Int64   // change batches the client sent
}

// motoDNS returns a DNS client for opts (the owner rule set by the caller;
// the zones too, or after making them, before the first cleanup) on the
// shared moto, counting its change batches; endpoint, when not empty, is
// where the client goes instead (a proxy in front of moto).
func motoDNS(t *testing.T, opts DNSOptions, endpoint string) dnsBundle {
	t.Helper()
	moto := motoEndpoint(t)
	if endpoint == "" {
		endpoint = moto
	}
	endpoint, changes := countChanges(t, endpoint)
	opts.Options = Options{Endpoint: endpoint, AccessKeyID: "testing", AccessKeySecret: "testing", RetryMaxAttempts: 1}
	if opts.RequestsPerSecond == 0 {
		opts.RequestsPerSecond = 100 // moto has no limit; the pacing has its own test
	}
	if len(opts.Zones) == 0 {
		opts.Zones = []string{"ZPENDING"}
	}
	d, err := NewDNS(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return dnsBundle{dns: d, raw: rawRoute53(t, moto), changes: changes}
}

func rawRoute53(t *testing.T, endpoint string) *route53.Client {
	t.Helper()
	d, err := NewDNS(t.Context(), DNSOptions{Options: Options{Endpoint: endpoint, AccessKeyID: "testing", AccessKeySecret: "testing"},
		Zones: []string{"Z1"}, NamePattern: "{{name}}.x"})
	if err != nil {
		t.Fatal(err)
	}
	return d.r53
}

// createZone makes a hosted zone in moto and returns its id.
func createZone(t *testing.T, raw *route53.Client, name string) string {
	t.Helper()
	out, err := raw.CreateHostedZone(t.Context(), &route53.CreateHostedZoneInput{
		Name: awssdk.String(name), CallerReference: awssdk.String(name + time.Now().String()),
	})
	if err != nil {
		t.Fatalf("CreateHostedZone %s: %v", name, err)
	}
	return strings.TrimPrefix(awssdk.ToString(out.HostedZone.Id), "/hostedzone/")
}

func rrset(name string, typ types.RRType, values ...string) types.ResourceRecordSet {
	s := types.ResourceRecordSet{Name: awssdk.String(name), Type: typ, TTL: awssdk.Int64(300)}
	for _, v := range values {
		s.ResourceRecords = append(s.ResourceRecords, types.ResourceRecord{Value: awssdk.String(v)})
	}
	return s
}

// txt is a TXT record set of quoted values.
func txt(name string, values ...string) types.ResourceRecordSet {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = `"` + v + `"`
	}
	return rrset(name, types.RRTypeTxt, quoted...)
}

func createRecords(t *testing.T, raw *route53.Client, zone string, sets ...types.ResourceRecordSet) {
	t.Helper()
	batch := &types.ChangeBatch{}
	for i := range sets {
		batch.Changes = append(batch.Changes, types.Change{Action: types.ChangeActionCreate, ResourceRecordSet: &sets[i]})
	}
	if _, err := raw.ChangeResourceRecordSets(t.Context(), &route53.ChangeResourceRecordSetsInput{HostedZoneId: &zone, ChangeBatch: batch}); err != nil {
		t.Fatalf("create records: %v", err)
	}
}

// zoneRecords lists a zone's records as "name TYPE", NS and SOA left out.
func zoneRecords(t *testing.T, raw *route53.Client, zone string) []string {
	t.Helper()
	out, err := raw.ListResourceRecordSets(t.Context(), &route53.ListResourceRecordSetsInput{HostedZoneId: &zone})
	if err != nil {
		t.Fatalf("ListResourceRecordSets: %v", err)
	}
	var names []string
	for _, s := range out.ResourceRecordSets {
		if s.Type != types.RRTypeNs && s.Type != types.RRTypeSoa {
			names = append(names, strings.TrimSuffix(awssdk.ToString(s.Name), ".")+" "+string(s.Type))
		}
	}
	slices.Sort(names)
	return names
}

func recordsOf(rs []Record) []string {
	out := recordNames(rs)
	slices.Sort(out)
	return out
}

func equalSets(got, want []string) bool {
	got, want = slices.Clone(got), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(got, want)
}

const owner = "heritage=switchboard,switchboard/owner=prod"

// TestDNSOwnerTXT is the owner_txt rule with prefixed markers: the
// instance's owned records go in one change batch with their markers; the
// ones that point at it without being Switchboard's are reported and left;
// a second run is a no-op success.
func TestDNSOwnerTXT(t *testing.T) {
	t.Parallel()
	zn := testZoneName(t)
	b := motoDNS(t, DNSOptions{OwnerTXT: owner, OwnerTXTName: "_owner.{{name}}"}, "")
	zone := createZone(t, b.raw, zn)
	b.dns.opts.Zones = []string{zone}
	b.dns.pageSize = 3 // 15 record sets: five pages
	createRecords(t, b.raw, zone,
		rrset("web-7."+zn, types.RRTypeA, "10.0.0.5"),
		txt("_owner.web-7."+zn, owner),
		rrset("web-7-public."+zn, types.RRTypeA, "54.1.2.3"),
		txt("_owner.web-7-public."+zn, owner+",switchboard/resource=instance/i-0abc"), // extra pairs are fine
		rrset("web-7-v6."+zn, types.RRTypeAaaa, "2001:db8:0:0::5"),                    // written longhand
		txt("_owner.web-7-v6."+zn, owner),
		rrset("ip-10-0-0-5."+zn, types.RRTypeCname, "ip-10-0-0-5.ec2.internal."),
		txt("_owner.ip-10-0-0-5."+zn, owner),
		// Points at the instance, not Switchboard's: reported, left.
		rrset("api."+zn, types.RRTypeA, "10.0.0.5"),
		rrset("test."+zn, types.RRTypeA, "10.0.0.5"),
		txt("_owner.test."+zn, "heritage=switchboard,switchboard/owner=test"),
		rrset("pool."+zn, types.RRTypeA, "10.0.0.5", "10.0.0.6"),
		txt("_owner.pool."+zn, owner),
		// Another instance's: neither deleted nor reported.
		rrset("web-8."+zn, types.RRTypeA, "10.0.0.8"),
		txt("_owner.web-8."+zn, owner),
	)
	target := DNSTarget{Name: "web-7", IPs: []string{"10.0.0.5", "54.1.2.3", "2001:db8::5", ""}, Hostnames: []string{"IP-10-0-0-5.ec2.internal"}}

	res, err := b.dns.CleanupDNS(testContext(t), target, false)
	if err != nil {
		t.Fatalf("CleanupDNS: %v", err)
	}
	host := strings.TrimSuffix(zn, ".")
	wantDeleted := []string{
		"web-7." + host + " A", "_owner.web-7." + host + " TXT",
		"web-7-public." + host + " A", "_owner.web-7-public." + host + " TXT",
		"web-7-v6." + host + " AAAA", "_owner.web-7-v6." + host + " TXT",
		"ip-10-0-0-5." + host + " CNAME", "_owner.ip-10-0-0-5." + host + " TXT",
	}
	if got := recordsOf(res.Deleted); !equalSets(got, wantDeleted) {
		t.Errorf("deleted %q, want %q", got, wantDeleted)
	}
	wantNotOwned := []string{"api." + host + " A", "pool." + host + " A", "test." + host + " A"}
	if got := recordsOf(res.NotOwned); !slices.Equal(got, wantNotOwned) {
		t.Errorf("not owned %q, want %q", got, wantNotOwned)
	}
	for _, r := range res.NotOwned {
		want := map[string]string{
			"api":  "there is no owner TXT record at _owner.api." + host,
			"test": "the TXT record at _owner.test." + host + " does not hold " + owner,
			"pool": "it also points at 10.0.0.6, which are not the instance's",
		}[strings.Split(r.Name, ".")[0]]
		if r.Reason != want || r.Zone != zone {
			t.Errorf("%s: reason %q in zone %s, want %q in %s", r, r.Reason, r.Zone, want, zone)
		}
	}
	if len(res.Absent) != 0 || res.DryRun {
		t.Errorf("absent %v, dry run %v", res.Absent, res.DryRun)
	}
	if n := b.changes.Load(); n != 1 {
		t.Errorf("%d change batches, want 1 for the zone", n)
	}
	wantLeft := []string{
		"_owner.pool." + host + " TXT", "_owner.test." + host + " TXT", "_owner.web-8." + host + " TXT",
		"api." + host + " A", "pool." + host + " A", "test." + host + " A", "web-8." + host + " A",
	}
	if got := zoneRecords(t, b.raw, zone); !equalSets(got, wantLeft) {
		t.Errorf("left in the zone %q, want %q", got, wantLeft)
	}
	wantSummary := "8 DNS records; left 3 records Switchboard does not own: api." + host + " A, pool." + host + " A, test." + host + " A"
	if got := res.Summary(); got != wantSummary {
		t.Errorf("summary %q, want %q", got, wantSummary)
	}

	// Again: nothing of Switchboard's is left, which is success, and no
	// change batch is sent.
	res, err = b.dns.CleanupDNS(testContext(t), target, false)
	if err != nil {
		t.Fatalf("second CleanupDNS: %v", err)
	}
	if len(res.Deleted) != 0 || len(res.NotOwned) != 3 || len(res.Absent) != 0 {
		t.Errorf("second run: %+v", res)
	}
	if n := b.changes.Load(); n != 1 {
		t.Errorf("the second run sent %d change batches", n-1)
	}
	if got := res.Summary(); !strings.HasPrefix(got, "no DNS records; left 3 records") {
		t.Errorf("second summary %q", got)
	}
}

// TestDNSOwnerTXTSameName is the owner_txt rule with the marker at the
// record's own name: the marker goes once no record it marks is left, and
// only the owner value goes from a TXT record set that holds others.
func TestDNSOwnerTXTSameName(t *testing.T) {
	t.Parallel()
	zn := testZoneName(t)
	b := motoDNS(t, DNSOptions{OwnerTXT: owner}, "")
	zone := createZone(t, b.raw, zn)
	b.dns.opts.Zones = []string{"/hostedzone/" + zone}
	createRecords(t, b.raw, zone,
		rrset("web-7."+zn, types.RRTypeA, "10.0.0.5"),
		rrset("web-7."+zn, types.RRTypeAaaa, "2001:db8::5"),
		txt("web-7."+zn, "v=spf1 -all", owner),
		// The AAAA is another host's: the marker stays for it.
		rrset("web-7b."+zn, types.RRTypeA, "10.0.0.5"),
		rrset("web-7b."+zn, types.RRTypeAaaa, "2001:db8::99"),
		txt("web-7b."+zn, owner),
	)
	res, err := b.dns.CleanupDNS(testContext(t), DNSTarget{IPs: []string{"10.0.0.5", "2001:db8::5"}}, false)
	if err != nil {
		t.Fatalf("CleanupDNS: %v", err)
	}
	host := strings.TrimSuffix(zn, ".")
	want := []string{"web-7." + host + " A", "web-7." + host + " AAAA", "web-7." + host + " TXT", "web-7b." + host + " A"}
	if got := recordsOf(res.Deleted); !slices.Equal(got, want) {
		t.Errorf("deleted %q, want %q", got, want)
	}
	for _, r := range res.Deleted {
		if r.Type == "TXT" && (!r.Marker || !slices.Equal(r.Values, []string{`"` + owner + `"`})) {
			t.Errorf("marker %+v, want the owner value only", r)
		}
	}
	wantLeft := []string{"web-7." + host + " TXT", "web-7b." + host + " AAAA", "web-7b." + host + " TXT"}
	if got := zoneRecords(t, b.raw, zone); !slices.Equal(got, wantLeft) {
		t.Errorf("left %q, want %q", got, wantLeft)
	}
	out, err := b.raw.ListResourceRecordSets(t.Context(), &route53.ListResourceRecordSetsInput{
		HostedZoneId: &zone, StartRecordName: awssdk.String("web-7." + zn), StartRecordType: types.RRTypeTxt, MaxItems: awssdk.Int32(1),
	})
	if err != nil || len(out.ResourceRecordSets) != 1 || len(out.ResourceRecordSets[0].ResourceRecords) != 1 ||
		awssdk.ToString(out.ResourceRecordSets[0].ResourceRecords[0].Value) != `"v=spf1 -all"` {
		t.Errorf("the TXT record set of web-7 is %+v (%v), want only its SPF value", out, err)
	}
	if n := b.changes.Load(); n != 1 {
		t.Errorf("%d change batches, want 1", n)
	}
}

// TestDNSNamePattern is the name_pattern rule across two zones, one named
// by id and one by name: one batch each.
func TestDNSNamePattern(t *testing.T) {
	t.Parallel()
	zn1, zn2 := testZoneName(t), testZoneName(t)
	b := motoDNS(t, DNSOptions{NamePattern: "{{ name }}.internal." + strings.TrimSuffix(zn1, ".")}, "")
	zone1, zone2 := createZone(t, b.raw, zn1), createZone(t, b.raw, zn2)
	b.dns.opts.Zones = []string{zone1, strings.TrimSuffix(zn2, ".")}
	// The pattern names records in zone 1; zone 2 holds records that point
	// at the instance under other names.
	createRecords(t, b.raw, zone1,
		rrset("web-7.internal."+zn1, types.RRTypeA, "10.0.0.5"),
		rrset("web-7.internal."+zn1, types.RRTypeAaaa, "2001:db8::5"),
		rrset("legacy."+zn1, types.RRTypeA, "10.0.0.5"),
		// web-8's name, but another address: a replacement's record.
		rrset("web-8.internal."+zn1, types.RRTypeA, "10.0.0.99"),
		// web-9's record, when its addresses are not known.
		rrset("web-9.internal."+zn1, types.RRTypeA, "10.0.0.77"),
	)
	createRecords(t, b.raw, zone2, rrset("web-7."+zn2, types.RRTypeA, "10.0.0.5"))
	h1, h2 := strings.TrimSuffix(zn1, "."), strings.TrimSuffix(zn2, ".")

	res, err := b.dns.CleanupDNS(testContext(t), DNSTarget{Name: "Web-7", IPs: []string{"10.0.0.5", "2001:db8::5"}}, false)
	if err != nil {
		t.Fatalf("CleanupDNS: %v", err)
	}
	if got, want := recordsOf(res.Deleted), []string{"web-7.internal." + h1 + " A", "web-7.internal." + h1 + " AAAA"}; !slices.Equal(got, want) {
		t.Errorf("deleted %q, want %q", got, want)
	}
	if got, want := recordsOf(res.NotOwned), []string{"legacy." + h1 + " A", "web-7." + h2 + " A"}; !slices.Equal(got, want) {
		t.Errorf("not owned %q, want %q", got, want)
	}
	if r := res.NotOwned[0]; !strings.Contains(r.Reason, "does not follow name_pattern") {
		t.Errorf("reason %q", r.Reason)
	}
	if n := b.changes.Load(); n != 1 {
		t.Errorf("%d change batches, want 1 (zone 2 has nothing to delete)", n)
	}

	res, err = b.dns.CleanupDNS(testContext(t), DNSTarget{Name: "web-8", IPs: []string{"10.0.0.8"}}, false)
	if err != nil || len(res.Deleted) != 0 || len(res.NotOwned) != 1 || !strings.Contains(res.NotOwned[0].Reason, "points at 10.0.0.99, not at the instance") {
		t.Errorf("web-8: %+v, %v; want its name's record pointing elsewhere reported", res, err)
	}
	res, err = b.dns.CleanupDNS(testContext(t), DNSTarget{Name: "web-9"}, false)
	if err != nil || !slices.Equal(recordsOf(res.Deleted), []string{"web-9.internal." + h1 + " A"}) {
		t.Errorf("web-9 by name alone: %+v, %v", res, err)
	}
	if got, want := zoneRecords(t, b.raw, zone1), []string{"legacy." + h1 + " A", "web-8.internal." + h1 + " A"}; !slices.Equal(got, want) {
		t.Errorf("left in zone 1 %q, want %q", got, want)
	}
	if got, want := zoneRecords(t, b.raw, zone2), []string{"web-7." + h2 + " A"}; !slices.Equal(got, want) {
		t.Errorf("left in zone 2 %q, want %q", got, want)
	}

	// A zone name that no hosted zone has.
	missing := motoDNS(t, DNSOptions{NamePattern: "{{name}}.x", Zones: []string{"no-such-zone-" + zn1}}, "")
	_, err = missing.dns.CleanupDNS(testContext(t), DNSTarget{Name: "web-7"}, false)
	if switchboard.ErrorCode(err) != switchboard.EINVALID || !strings.Contains(switchboard.ErrorMessage(err), "no hosted zone named no-such-zone-") {
		t.Errorf("missing zone: %v", err)
	}
}

func TestDNSDryRun(t *testing.T) {
	t.Parallel()
	zn := testZoneName(t)
	b := motoDNS(t, DNSOptions{OwnerTXT: owner, OwnerTXTName: "{{type}}-{{name}}"}, "")
	zone := createZone(t, b.raw, zn)
	b.dns.opts.Zones = []string{zone}
	createRecords(t, b.raw, zone,
		rrset("web-7."+zn, types.RRTypeA, "10.0.0.5"),
		txt("a-web-7."+zn, owner), // external-dns's format
		rrset("api."+zn, types.RRTypeA, "10.0.0.5"),
	)
	before := zoneRecords(t, b.raw, zone)
	res, err := b.dns.CleanupDNS(testContext(t), DNSTarget{IPs: []string{"10.0.0.5"}}, true)
	if err != nil {
		t.Fatalf("CleanupDNS: %v", err)
	}
	host := strings.TrimSuffix(zn, ".")
	if got, want := recordsOf(res.Deleted), []string{"a-web-7." + host + " TXT", "web-7." + host + " A"}; !slices.Equal(got, want) || !res.DryRun {
		t.Errorf("dry run would delete %q (dry run %v), want %q", got, res.DryRun, want)
	}
	if got, want := res.Summary(), "would remove 2 DNS records; left 1 record Switchboard does not own: api."+host+" A"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if n := b.changes.Load(); n != 0 {
		t.Errorf("a dry run sent %d change batches", n)
	}
	if after := zoneRecords(t, b.raw, zone); !slices.Equal(after, before) {
		t.Errorf("a dry run changed the zone: %q, was %q", after, before)
	}
}

// route53Like is a proxy in front of moto that answers a change batch the
// way Route53 does where moto does not: a DELETE of a record set that is
// not there fails the batch with InvalidChangeBatch. before runs ahead of
// each change batch (to delete a record "between listing and change");
// staleOnce answers the first batch "the values provided do not match".
type route53Like struct {
	raw       *route53.Client
	messages  bool // the <InvalidChangeBatch><Messages> form, else <ErrorResponse>
	before    func()
	staleOnce atomic.Bool
	// throttleIn is a zone whose next change batch is refused with
	// PriorRequestNotComplete, outageIn one whose next batch fails with
	// ServiceUnavailable.
	throttleIn, outageIn atomic.Pointer[string]

	mu      sync.Mutex
	refused int
}

func (p *route53Like) serve(t *testing.T, moto string) *httptest.Server {
	u, _ := url.Parse(moto)
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isChange(r) {
			proxy.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		zone := strings.Split(strings.TrimPrefix(r.URL.Path, "/2013-04-01/hostedzone/"), "/")[0]
		if z := p.throttleIn.Load(); z != nil && *z == zone && p.throttleIn.CompareAndSwap(z, nil) {
			writeRoute53Error(w, http.StatusBadRequest, "PriorRequestNotComplete", "The request was rejected because Route 53 was still processing a prior request.")
			return
		}
		if z := p.outageIn.Load(); z != nil && *z == zone && p.outageIn.CompareAndSwap(z, nil) {
			writeRoute53Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "Service Unavailable")
			return
		}
		if p.before != nil {
			p.before()
		}
		var req struct {
			Changes []struct {
				Action string
				Set    struct {
					Name, Type, SetIdentifier string
				} `xml:"ResourceRecordSet"`
			} `xml:"ChangeBatch>Changes>Change"`
		}
		if err := xml.Unmarshal(body, &req); err != nil {
			t.Errorf("proxy: change batch %s: %v", body, err)
		}
		if p.staleOnce.CompareAndSwap(true, false) {
			c := req.Changes[0].Set
			writeRoute53Error(w, http.StatusBadRequest, "InvalidChangeBatch",
				fmt.Sprintf("[Tried to delete resource record set [name='%s', type='%s'] but the values provided do not match the current values]", c.Name, c.Type))
			return
		}
		var missing []string
		for _, c := range req.Changes {
			if c.Action != "DELETE" {
				continue
			}
			out, err := p.raw.ListResourceRecordSets(t.Context(), &route53.ListResourceRecordSetsInput{HostedZoneId: &zone,
				StartRecordName: &c.Set.Name, StartRecordType: types.RRType(c.Set.Type), MaxItems: awssdk.Int32(1)})
			if err != nil {
				t.Errorf("proxy: list: %v", err)
			}
			if err != nil || len(out.ResourceRecordSets) == 0 || fqdn(awssdk.ToString(out.ResourceRecordSets[0].Name)) != fqdn(c.Set.Name) ||
				string(out.ResourceRecordSets[0].Type) != c.Set.Type {
				missing = append(missing, fmt.Sprintf("Tried to delete resource record set [name='%s', type='%s'] but it was not found", fqdn(c.Set.Name), c.Set.Type))
			}
		}
		if len(missing) == 0 {
			proxy.ServeHTTP(w, r)
			return
		}
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusBadRequest)
		if p.messages {
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<InvalidChangeBatch xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Messages><Message>%s</Message></Messages><RequestId>r-1</RequestId></InvalidChangeBatch>`,
				strings.Join(missing, "</Message><Message>"))
			return
		}
		fmt.Fprintf(w, `<?xml version="1.0"?>
<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>InvalidChangeBatch</Code><Message>[%s]</Message></Error><RequestId>r-1</RequestId></ErrorResponse>`,
			strings.Join(missing, ", "))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func writeRoute53Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0"?>
<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>r-1</RequestId></ErrorResponse>`, code, msg)
}

// TestDNSAlreadyGone deletes records between the listing and the change
// batch, behind a proxy that answers as Route53 does: the batch is sent
// again without them, and they count as done.
func TestDNSAlreadyGone(t *testing.T) {
	t.Parallel()
	moto := motoEndpoint(t)
	for _, messages := range []bool{false, true} {
		t.Run(fmt.Sprintf("messages=%v", messages), func(t *testing.T) {
			t.Parallel()
			zn := testZoneName(t)
			like := &route53Like{raw: rawRoute53(t, moto), messages: messages}
			srv := like.serve(t, moto)
			b := motoDNS(t, DNSOptions{OwnerTXT: owner, OwnerTXTName: "_owner.{{name}}"}, srv.URL)
			zone := createZone(t, b.raw, zn)
			b.dns.opts.Zones = []string{zone}
			gone := []types.ResourceRecordSet{rrset("web-7-public."+zn, types.RRTypeA, "54.1.2.3"), rrset("web-7-v6."+zn, types.RRTypeAaaa, "2001:db8::5")}
			createRecords(t, b.raw, zone,
				rrset("web-7."+zn, types.RRTypeA, "10.0.0.5"), txt("_owner.web-7."+zn, owner),
				gone[0], txt("_owner.web-7-public."+zn, owner),
				gone[1], txt("_owner.web-7-v6."+zn, owner),
			)
			var once sync.Once
			like.before = func() {
				once.Do(func() {
					batch := &types.ChangeBatch{}
					for i := range gone {
						batch.Changes = append(batch.Changes, types.Change{Action: types.ChangeActionDelete, ResourceRecordSet: &gone[i]})
					}
					if _, err := b.raw.ChangeResourceRecordSets(t.Context(), &route53.ChangeResourceRecordSetsInput{HostedZoneId: &zone, ChangeBatch: batch}); err != nil {
						t.Errorf("delete behind Switchboard's back: %v", err)
					}
				})
			}

			res, err := b.dns.CleanupDNS(testContext(t), DNSTarget{Name: "web-7", IPs: []string{"10.0.0.5", "54.1.2.3", "2001:db8::5"}}, false)
			if err != nil {
				t.Fatalf("CleanupDNS: %v", err)
			}
			host := strings.TrimSuffix(zn, ".")
			wantDeleted := []string{"_owner.web-7-public." + host + " TXT", "_owner.web-7-v6." + host + " TXT", "_owner.web-7." + host + " TXT", "web-7." + host + " A"}
			if got := recordsOf(res.Deleted); !equalSets(got, wantDeleted) {
				t.Errorf("deleted %q, want %q", got, wantDeleted)
			}
			if got, want := recordsOf(res.Absent), []string{"web-7-public." + host + " A", "web-7-v6." + host + " AAAA"}; !slices.Equal(got, want) {
				t.Errorf("absent %q, want %q", got, want)
			}
			if like.refused != 1 || b.changes.Load() != 2 {
				t.Errorf("%d batches refused of %d sent; want the first refused, the second without the missing records", like.refused, b.changes.Load())
			}
			if got := zoneRecords(t, b.raw, zone); len(got) != 0 {
				t.Errorf("left in the zone: %q", got)
			}
		})
	}
}

// TestDNSStaleValues changes a record between listing and change: the zone
// is listed again and the batch sent anew.
func TestDNSStaleValues(t *testing.T) {
	t.Parallel()
	moto := motoEndpoint(t)
	zn := testZoneName(t)
	like := &route53Like{raw: rawRoute53(t, moto)}
	like.staleOnce.Store(true)
	srv := like.serve(t, moto)
	b := motoDNS(t, DNSOptions{NamePattern: "{{name}}." + strings.TrimSuffix(zn, ".")}, srv.URL)
	zone := createZone(t, b.raw, zn)
	b.dns.opts.Zones = []string{zone}
	createRecords(t, b.raw, zone, rrset("web-7."+zn, types.RRTypeA, "10.0.0.5"))
	res, err := b.dns.CleanupDNS(testContext(t), DNSTarget{Name: "web-7"}, false)
	if err != nil || len(res.Deleted) != 1 || len(res.Absent) != 0 {
		t.Fatalf("CleanupDNS = %+v, %v", res, err)
	}
	if n := b.changes.Load(); n != 2 {
		t.Errorf("%d change batches, want 2", n)
	}
	if got := zoneRecords(t, b.raw, zone); len(got) != 0 {
		t.Errorf("left in the zone: %q", got)
	}
}

// fakeRoute53 answers ListResourceRecordSets with one A record of 10.0.0.5
// and ChangeResourceRecordSets with success, unless fail answers first.
type fakeRoute53 struct {
	fail  func(w http.ResponseWriter, r *http.Request) bool
	mu    sync.Mutex
	times []time.Time
}

func (f *fakeRoute53) serve(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.times = append(f.times, time.Now())
		f.mu.Unlock()
		if f.fail != nil && f.fail(w, r) {
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/rrset"):
			fmt.Fprint(w, `<?xml version="1.0"?>
<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ResourceRecordSets>
<ResourceRecordSet><Name>web-7.example.com.</Name><Type>A</Type><TTL>300</TTL><ResourceRecords><ResourceRecord><Value>10.0.0.5</Value></ResourceRecord></ResourceRecords></ResourceRecordSet>
</ResourceRecordSets><IsTruncated>false</IsTruncated><MaxItems>300</MaxItems></ListResourceRecordSetsResponse>`)
		case isChange(r):
			fmt.Fprint(w, `<?xml version="1.0"?>
<ChangeResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeInfo><Id>/change/C1</Id><Status>PENDING</Status><SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fakeDNS(t *testing.T, endpoint string, perSecond float64, zones ...string) *DNS {
	t.Helper()
	d, err := NewDNS(t.Context(), DNSOptions{
		Options: Options{Endpoint: endpoint, AccessKeyID: "testing", AccessKeySecret: "testing", RetryMaxAttempts: 1},
		Zones:   zones, NamePattern: "{{name}}.example.com", RequestsPerSecond: perSecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDNSErrors(t *testing.T) {
	t.Parallel()
	onList := func(status int, code, msg string) func(http.ResponseWriter, *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet {
				return false
			}
			writeRoute53Error(w, status, code, msg)
			return true
		}
	}
	onChange := func(status int, code, msg string) func(http.ResponseWriter, *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodPost {
				return false
			}
			writeRoute53Error(w, status, code, msg)
			return true
		}
	}
	tests := []struct {
		name string
		fail func(http.ResponseWriter, *http.Request) bool
		kind string
		says []string
	}{
		{"throttled", onList(http.StatusBadRequest, "Throttling", "Rate exceeded"), switchboard.ETHROTTLED,
			[]string{"asked Switchboard to slow down (Throttling: Rate exceeded) when asked to list the records of hosted zone Z1"}},
		{"prior request", onChange(http.StatusBadRequest, "PriorRequestNotComplete", "The request was rejected because Route 53 was still processing a prior request."),
			switchboard.ETHROTTLED, []string{"PriorRequestNotComplete", "delete 1 record from hosted zone Z1"}},
		{"access denied", onChange(http.StatusForbidden, "AccessDenied", "User: arn:aws:iam::123456789012:user/sb is not authorized to perform: route53:ChangeResourceRecordSets"),
			switchboard.EFORBIDDEN, []string{"did not let Switchboard delete 1 record from hosted zone Z1", "need route53:ChangeResourceRecordSets on arn:aws:route53:::hostedzone/Z1", "aws-policy"}},
		{"outage", onList(http.StatusServiceUnavailable, "ServiceUnavailable", "Service Unavailable"), switchboard.EUNAVAILABLE,
			[]string{"failed to list the records of hosted zone Z1", "will try again"}},
		{"no such zone", onList(http.StatusNotFound, "NoSuchHostedZone", "No hosted zone found with ID: Z1"), switchboard.ENOTFOUND,
			[]string{"NoSuchHostedZone", "check the zones"}},
		{"another invalid batch", onChange(http.StatusBadRequest, "InvalidChangeBatch", "[RRSet of type CNAME with DNS name web-7.example.com. is not permitted]"),
			switchboard.EINVALID, []string{"refused to delete 1 record from hosted zone Z1", "is not permitted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := (&fakeRoute53{fail: tt.fail}).serve(t)
			res, err := fakeDNS(t, srv.URL, 100, "Z1").CleanupDNS(testContext(t), DNSTarget{Name: "web-7"}, false)
			if code := switchboard.ErrorCode(err); code != tt.kind {
				t.Fatalf("error %v (%s), want %s", err, code, tt.kind)
			}
			msg := switchboard.ErrorMessage(err)
			for _, s := range tt.says {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q does not say %q", msg, s)
				}
			}
			if len(res.Deleted) != 0 {
				t.Errorf("deleted %v", res.Deleted)
			}
		})
	}

	t.Run("no answer", func(t *testing.T) {
		t.Parallel()
		srv := (&fakeRoute53{}).serve(t)
		srv.Close()
		_, err := fakeDNS(t, srv.URL, 100, "Z1").CleanupDNS(testContext(t), DNSTarget{Name: "web-7"}, false)
		if code := switchboard.ErrorCode(err); code != switchboard.EUNAVAILABLE {
			t.Errorf("error %v (%s), want unavailable", err, code)
		}
	})
	t.Run("bad target", func(t *testing.T) {
		t.Parallel()
		d := fakeDNS(t, "http://127.0.0.1:1", 100, "Z1")
		for _, target := range []DNSTarget{{}, {IPs: []string{"", " "}}, {IPs: []string{"10.0.0.300"}}, {Hostnames: []string{"http://x"}}} {
			if _, err := d.CleanupDNS(testContext(t), target, false); switchboard.ErrorCode(err) != switchboard.EINVALID {
				t.Errorf("%+v: %v, want invalid", target, err)
			}
		}
	})
}

// TestDNSPacing checks the token bucket: every request of a client waits
// its turn, across zones.
func TestDNSPacing(t *testing.T) {
	t.Parallel()
	f := &fakeRoute53{}
	srv := f.serve(t)
	d := fakeDNS(t, srv.URL, 10, "Z1", "Z2", "Z3")
	start := time.Now()
	res, err := d.CleanupDNS(testContext(t), DNSTarget{Name: "web-7"}, false)
	if err != nil || len(res.Deleted) != 3 {
		t.Fatalf("CleanupDNS = %+v, %v", res, err)
	}
	if len(f.times) != 6 {
		t.Fatalf("%d requests, want a listing and a batch per zone", len(f.times))
	}
	for i := 1; i < len(f.times); i++ {
		if gap := f.times[i].Sub(f.times[i-1]); gap < 80*time.Millisecond {
			t.Errorf("request %d came %v after the one before; 10 a second leaves 100ms", i+1, gap)
		}
	}
	if elapsed := time.Since(start); elapsed < 450*time.Millisecond {
		t.Errorf("6 requests at 10 a second took %v", elapsed)
	}
	// The default is Route53's own limit.
	if DefaultRequestsPerSecond != 5 || fakeDNS(t, srv.URL, 0, "Z1").limit.Limit() != 5 {
		t.Error("the default rate is not Route53's 5 a second")
	}
}

func TestDNSOptionsValidate(t *testing.T) {
	t.Parallel()
	good := DNSOptions{Zones: []string{"Z1AAAAAAAAAAAAAAAAAA", "/hostedzone/Z2", "internal.example.com", "example.com."}, OwnerTXT: owner}
	if err := good.WithDefaults().Validate(); err != nil {
		t.Fatalf("good options: %v", err)
	}
	tests := []struct {
		name   string
		change func(o *DNSOptions)
		key    string
	}{
		{"no zones", func(o *DNSOptions) { o.Zones = nil }, "zones is empty"},
		{"bad zone", func(o *DNSOptions) { o.Zones = []string{"not a zone"} }, `zones: "not a zone"`},
		{"single label", func(o *DNSOptions) { o.Zones = []string{"internal"} }, `zones: "internal"`},
		{"no rule", func(o *DNSOptions) { o.OwnerTXT = "" }, "no owner rule"},
		{"two rules", func(o *DNSOptions) { o.NamePattern = "{{name}}.example.com" }, "both set"},
		{"owner without pairs", func(o *DNSOptions) { o.OwnerTXT = "switchboard" }, "owner_txt"},
		{"marker name without name", func(o *DNSOptions) { o.OwnerTXTName = "_owner.example.com" }, "owner_txt_name"},
		{"marker name not ending with name", func(o *DNSOptions) { o.OwnerTXTName = "{{name}}.owner" }, "must end with {{name}}"},
		{"marker name unknown placeholder", func(o *DNSOptions) { o.OwnerTXTName = "{{zone}}.{{name}}" }, "{{zone}}"},
		{"marker name without owner", func(o *DNSOptions) { o.OwnerTXT, o.NamePattern, o.OwnerTXTName = "", "{{name}}.x", "_o.{{name}}" }, "owner_txt_name is set without owner_txt"},
		{"pattern without name", func(o *DNSOptions) { o.OwnerTXT, o.NamePattern = "", "web.example.com" }, "name_pattern"},
		{"pattern with type", func(o *DNSOptions) { o.OwnerTXT, o.NamePattern = "", "{{type}}.{{name}}.example.com" }, "{{type}}"},
		{"pattern with spaces", func(o *DNSOptions) { o.OwnerTXT, o.NamePattern = "", "{{name}} .example.com" }, "characters"},
		{"negative rate", func(o *DNSOptions) { o.RequestsPerSecond = -1 }, "requests_per_second"},
		{"half a key", func(o *DNSOptions) { o.AccessKeyID = "AKIA" }, "access_key_id and access_key_secret"},
		{"bad endpoint", func(o *DNSOptions) { o.Endpoint = "127.0.0.1:5000" }, "endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := good
			o.Zones = slices.Clone(good.Zones)
			tt.change(&o)
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.key) || !strings.HasPrefix(err.Error(), "route53: ") {
				t.Errorf("Validate = %v, want an error naming %q", err, tt.key)
			}
			if _, err := NewDNS(context.Background(), o); err == nil {
				t.Error("NewDNS accepted the options")
			}
		})
	}
}

func TestOwnerMarkers(t *testing.T) {
	t.Parallel()
	set := txt("x.example.com.", owner, "v=spf1 -all", "heritage=switchboard,switchboard/owner=prodx",
		owner+",switchboard/resource=i-1", `heritage=switchboard" "\,switchboard/owner=prod`)
	got := ownerValues(set, owner)
	want := []string{`"` + owner + `"`, `"` + owner + `,switchboard/resource=i-1"`, `"heritage=switchboard" "\,switchboard/owner=prod"`}
	if !slices.Equal(got, want) {
		t.Errorf("owner values %q, want %q", got, want)
	}
	for in, want := range map[string]string{
		`"a=b"`:           "a=b",
		`"a=" "b"`:        "a=b",
		`"say \"hi\""`:    `say "hi"`,
		`"\065\066"`:      "56", // octal
		`plain`:           "plain",
		`"unterminated`:   "unterminated",
		`"back\\slash"`:   `back\slash`,
		`"\0"`:            "0",
		`"with \"q\" x" `: `with "q" x`,
	} {
		if got := txtText(in); got != want {
			t.Errorf("txtText(%s) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"Web.Example.com":     "web.example.com.",
		`\052.example.com.`:   "*.example.com.",
		`a\.b.example.com`:    `a\.b.example.com.`,
		`web\0.example.com`:   `web\0.example.com.`,
		"ip-10-0-0-5.ec2.int": "ip-10-0-0-5.ec2.int.",
	} {
		if got := fqdn(in); got != want {
			t.Errorf("fqdn(%s) = %q, want %q", in, got, want)
		}
	}
	d := &DNS{opts: DNSOptions{OwnerTXT: owner, OwnerTXTName: "_sb.{{type}}-{{ name }}"}}
	if got := d.markerName("web.example.com.", types.RRTypeCname); got != "_sb.cname-web.example.com." {
		t.Errorf("marker name %q", got)
	}
}

func TestBatchProblems(t *testing.T) {
	t.Parallel()
	notFound := "Tried to delete resource record set [name='a.example.com.', type='A'] but it was not found"
	withID := "Tried to delete resource record set [name='b.example.com.', type='AAAA', set-identifier='blue'] but it was not found"
	stale := "Tried to delete resource record set [name='c.example.com.', type='A'] but the values provided do not match the current values"
	tests := []struct {
		err   error
		gone  []rrKey
		stale bool
		ok    bool
	}{
		{&types.InvalidChangeBatch{Message: awssdk.String("ChangeBatch errors occurred"), Messages: []string{notFound, withID}},
			[]rrKey{{"a.example.com.", "A", ""}, {"b.example.com.", "AAAA", "blue"}}, false, true},
		{&types.InvalidChangeBatch{Message: awssdk.String("[" + notFound + ", " + stale + "]")}, []rrKey{{"a.example.com.", "A", ""}}, true, true},
		{&types.InvalidChangeBatch{Message: awssdk.String(notFound + ", RRSet with DNS name x. is not permitted")}, nil, false, false},
		{&types.InvalidInput{Message: awssdk.String(notFound)}, nil, false, false},
		{errors.New(notFound), nil, false, false},
	}
	for i, tt := range tests {
		gone, st, ok := batchProblems(tt.err)
		if !slices.Equal(gone, tt.gone) || st != tt.stale || ok != tt.ok {
			t.Errorf("%d: batchProblems = %v, %v, %v; want %v, %v, %v", i, gone, st, ok, tt.gone, tt.stale, tt.ok)
		}
	}
}
