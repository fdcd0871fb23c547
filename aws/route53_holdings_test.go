package aws

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/switchboardhq/switchboard"
)

// Holdings lists the records Switchboard owns, by either rule, with what
// they point at; records it does not own are not listed.
func TestDNSHoldings(t *testing.T) {
	t.Parallel()
	zn := testZoneName(t)
	host := strings.TrimSuffix(zn, ".")
	b := motoDNS(t, DNSOptions{OwnerTXT: owner, OwnerTXTName: "_owner.{{name}}"}, "")
	zone := createZone(t, b.raw, zn)
	b.dns.opts.Zones = []string{zone}
	createRecords(t, b.raw, zone,
		rrset("web-7."+zn, types.RRTypeA, "10.0.0.5"),
		txt("_owner.web-7."+zn, owner),
		rrset("ip-10-0-0-5."+zn, types.RRTypeCname, "ip-10-0-0-5.ec2.internal."),
		txt("_owner.ip-10-0-0-5."+zn, owner),
		rrset("api."+zn, types.RRTypeA, "10.0.0.5"),
		rrset("test."+zn, types.RRTypeA, "10.0.0.6"),
		txt("_owner.test."+zn, "heritage=switchboard,switchboard/owner=test"),
	)
	got, err := b.dns.Holdings(testContext(t))
	if err != nil {
		t.Fatalf("Holdings: %v", err)
	}
	want := []switchboard.Holding{
		{System: "Route53", Item: "ip-10-0-0-5." + host + " CNAME", Addresses: []string{"ip-10-0-0-5.ec2.internal"}},
		{System: "Route53", Item: "web-7." + host + " A", Addresses: []string{"10.0.0.5"}},
	}
	if !equalHoldings(got, want) {
		t.Errorf("owner_txt: Holdings =\n%+v\nwant\n%+v", got, want)
	}

	zn2 := testZoneName(t)
	p := motoDNS(t, DNSOptions{NamePattern: "{{name}}.internal." + strings.TrimSuffix(zn2, ".")}, "")
	zone2 := createZone(t, p.raw, zn2)
	p.dns.opts.Zones = []string{zone2}
	createRecords(t, p.raw, zone2,
		rrset("web-7.internal."+zn2, types.RRTypeA, "10.0.0.5"),
		rrset("legacy."+zn2, types.RRTypeA, "10.0.0.5"),
	)
	got, err = p.dns.Holdings(testContext(t))
	if err != nil {
		t.Fatalf("Holdings: %v", err)
	}
	want = []switchboard.Holding{{System: "Route53", Item: "web-7.internal." + strings.TrimSuffix(zn2, ".") + " A", Name: "web-7", Addresses: []string{"10.0.0.5"}}}
	if !equalHoldings(got, want) {
		t.Errorf("name_pattern: Holdings =\n%+v\nwant\n%+v", got, want)
	}
}

func equalHoldings(a, b []switchboard.Holding) bool {
	return slices.EqualFunc(a, b, func(x, y switchboard.Holding) bool {
		return x.System == y.System && x.Item == y.Item && x.Instance == y.Instance && x.Name == y.Name && slices.Equal(x.Addresses, y.Addresses)
	})
}
