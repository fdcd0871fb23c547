package sim

import (
	"net/netip"

	"github.com/switchboardhq/switchboard"
)

// The auto-assigned public addresses come from ranges reserved for
// documentation and benchmarks (RFC 5737, RFC 2544), so a simulated address
// in a chat message can never be mistaken for, or reach, a real host.
var autoRanges = []struct {
	base  netip.Addr
	hosts int
}{
	{netip.MustParseAddr("198.51.100.0"), 254},
	{netip.MustParseAddr("203.0.113.0"), 254},
	{netip.MustParseAddr("192.0.2.0"), 254},
	{netip.MustParseAddr("198.18.0.0"), 1<<17 - 2},
}

// addressBook tracks the public addresses in use: Elastic IPs and the
// auto-assigned ones.
type addressBook struct {
	elastic map[string]bool   // the account's Elastic IPs; nil means any address
	holder  map[string]string // every address in use -> the instance holding it
	auto    map[string]bool   // the addresses in use that were auto-assigned
	cursor  int               // where the next auto-assignment search starts
	size    int
}

func newAddressBook(elasticIPs []string) *addressBook {
	b := &addressBook{holder: make(map[string]string), auto: make(map[string]bool)}
	for _, r := range autoRanges {
		b.size += r.hosts
	}
	if elasticIPs != nil {
		b.elastic = make(map[string]bool, len(elasticIPs))
		for _, s := range elasticIPs {
			if ip, err := parseIPv4(s); err == nil {
				b.elastic[ip] = true
			}
		}
	}
	return b
}

// listed reports whether ip is one of the Elastic IPs the account was given.
func (b *addressBook) listed(ip string) bool { return b.elastic[ip] }

// owns reports whether the account may associate ip.
func (b *addressBook) owns(ip string) bool { return b.elastic == nil || b.elastic[ip] }

// take marks ip as auto-assigned to id.
func (b *addressBook) take(ip, id string) {
	b.holder[ip] = id
	b.auto[ip] = true
}

func (b *addressBook) release(ip string) {
	delete(b.holder, ip)
	delete(b.auto, ip)
}

// assign gives id the next free auto-assigned address, going round the pool
// so a released address is not handed out again at once. It returns "" when
// the pool is exhausted, as a subnet without free addresses would.
func (b *addressBook) assign(id string) string {
	for k := 0; k < b.size; k++ {
		i := (b.cursor + k) % b.size
		ip := autoAddress(i)
		if _, used := b.holder[ip]; used || b.elastic[ip] {
			continue
		}
		b.cursor = i + 1
		b.take(ip, id)
		return ip
	}
	return ""
}

// autoAddress is the i-th address of the auto-assignment pool.
func autoAddress(i int) string {
	for _, r := range autoRanges {
		if i < r.hosts {
			a := r.base.As4()
			n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
			n += uint32(i + 1)
			return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}).String()
		}
		i -= r.hosts
	}
	return ""
}

// parseIPv4 returns s in canonical form, or EC2's error for a public IP that
// is not an IPv4 address.
func parseIPv4(s string) (string, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() {
		return "", switchboard.InvalidParameterValue("PublicIp", s, "Give an IPv4 address such as 203.0.113.10.")
	}
	return ip.String(), nil
}
