package pebbletest

import (
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// StartDNS serves DNS over TCP (which Pebble's validation uses) for the
// length of the test, and returns its address: 127.0.0.1 is the address
// of every name except those whose first label is "nowhere", which have
// none. It is the tests' stand-in for the public DNS.
func StartDNS(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			name := strings.ToLower(q.Name)
			if q.Qtype != dns.TypeA || strings.HasPrefix(name, "nowhere.") {
				continue
			}
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IPv4(127, 0, 0, 1),
			})
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}
