package netguard

import (
	"net/netip"
	"testing"
)

func TestReason(t *testing.T) {
	cases := []struct {
		ip     string
		denied bool
	}{
		{"127.0.0.1", true},
		{"127.8.9.10", true},
		{"::1", true},
		{"0.0.0.0", true},
		{"::", true},
		{"10.1.2.3", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.168.1.1", true},
		{"100.64.0.1", true},      // CGNAT, used by some clouds' metadata
		{"169.254.169.254", true}, // cloud metadata
		{"fe80::1", true},
		{"fd00:ec2::254", true}, // AWS metadata over IPv6
		{"fc00::1", true},
		{"224.0.0.1", true},
		{"ff02::1", true},
		{"255.255.255.255", true},
		{"64:ff9b::a00:1", true},   // NAT64 for 10.0.0.1
		{"64:ff9b::7f00:1", true},  // NAT64 for 127.0.0.1
		{"2002:c0a8:101::1", true}, // 6to4 for 192.168.1.1
		{"198.18.0.1", true},
		{"172.32.0.1", false},
		{"104.16.0.35", false},
		{"203.0.113.80", false}, // where a test machine resolves the npm registry
		{"2606:4700::6810:1", false},
		{"64:ff9b::6810:23", false}, // NAT64 for a public address
	}
	for _, tc := range cases {
		reason := Reason(netip.MustParseAddr(tc.ip).Unmap())
		if (reason != "") != tc.denied {
			t.Errorf("%s: reason %q, want denied=%v", tc.ip, reason, tc.denied)
		}
	}
}
