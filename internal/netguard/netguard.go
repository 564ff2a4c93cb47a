// Package netguard decides which addresses the service may connect to on a
// user's behalf: the build proxy (sandbox/bwrap) and webhook deliveries
// (package webhook) both refuse this host, its private networks and cloud
// metadata, so that a URL someone else chose cannot reach them.
package netguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"
)

// deniedV4 are IPv4 ranges that are never a package registry nor a webhook receiver. The
// documentation ranges (TEST-NET-1..3) are deliberately absent: some
// intercepting networks, this one included, resolve public names into them.
var deniedV4 = []struct {
	pfx    netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
}

// Reason says why ip may not be connected to, or "" if it may: loopback,
// private, link-local (cloud metadata), CGNAT, multicast and reserved
// ranges, also when an IPv6 address carries one of them inside.
func Reason(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	}
	if ip.Is4() {
		for _, d := range deniedV4 {
			if d.pfx.Contains(ip) {
				return d.reason
			}
		}
		return ""
	}
	// IPv6 forms that carry an IPv4 address: judge the address inside.
	b := ip.As16()
	for _, pfx := range []netip.Prefix{
		netip.MustParsePrefix("64:ff9b::/96"), // NAT64
		netip.MustParsePrefix("::/96"),        // IPv4-compatible (deprecated)
	} {
		if pfx.Contains(ip) {
			if r := Reason(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})); r != "" {
				return r + " (embedded IPv4)"
			}
		}
	}
	if netip.MustParsePrefix("2002::/16").Contains(ip) { // 6to4
		if r := Reason(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})); r != "" {
			return r + " (6to4)"
		}
	}
	if netip.MustParsePrefix("fec0::/10").Contains(ip) {
		return "site-local"
	}
	if netip.MustParsePrefix("100::/64").Contains(ip) {
		return "discard-only"
	}
	return ""
}

// DeniedError is a refusal to connect to an address.
type DeniedError struct {
	Addr   netip.Addr
	Reason string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("refusing to connect to %s (%s)", e.Addr, e.Reason)
}

// Check returns a *DeniedError when ip is denied, or is one of this host's
// own addresses (a service bound to 0.0.0.0 answers on them as on loopback).
func Check(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	if reason := Reason(ip); reason != "" {
		return &DeniedError{Addr: ip, Reason: reason}
	}
	if slices.Contains(localAddrs(), ip) {
		return &DeniedError{Addr: ip, Reason: "address of this host"}
	}
	return nil
}

// Control is a net.Dialer Control function: it runs after DNS and before
// connect(2) for every address tried, so the address checked is the one
// connected to and a name that resolves differently the second time (DNS
// rebinding) gains nothing.
func Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("unexpected dial address %q: %w", address, err)
	}
	return Check(ap.Addr())
}

// CheckHost resolves host and fails when it has no address or any of its
// addresses is denied: a name that points partly inside is refused whole.
func CheckHost(ctx context.Context, host string) error {
	if ip, err := netip.ParseAddr(host); err == nil {
		return Check(ip)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("resolve %s: no address", host)
	}
	for _, a := range addrs {
		if err := Check(a); err != nil {
			return fmt.Errorf("%s resolves to %s: %w", host, a, err)
		}
	}
	return nil
}

var local struct {
	mu    sync.Mutex
	at    time.Time
	addrs []netip.Addr
}

// localAddrs returns this host's addresses, cached briefly: they rarely
// change and every dial asks.
func localAddrs() []netip.Addr {
	local.mu.Lock()
	defer local.mu.Unlock()
	if time.Since(local.at) < 10*time.Second {
		return local.addrs
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return local.addrs
	}
	local.addrs = local.addrs[:0]
	for _, a := range addrs {
		if pfx, err := netip.ParsePrefix(a.String()); err == nil {
			local.addrs = append(local.addrs, pfx.Addr().Unmap())
		}
	}
	local.at = time.Now()
	return local.addrs
}
