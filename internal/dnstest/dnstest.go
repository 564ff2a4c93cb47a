// Package dnstest runs an authoritative-looking DNS server for tests on
// 127.0.0.1, over UDP and TCP on the same port, answering TXT queries from
// records a test sets. Other names get NXDOMAIN.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Server is a running test DNS server.
type Server struct {
	// Addr is "127.0.0.1:port", for DNS_RESOLVER.
	Addr string

	mu      sync.Mutex
	txt     map[string][][]string // lower-case fqdn -> records, each its strings
	perName map[string]int        // lower-case fqdn -> queries
	queries atomic.Int64
}

// Start serves until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	pc, ln, err := listenBoth()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: pc.LocalAddr().String(), txt: map[string][][]string{}, perName: map[string]int{}}
	udp := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)}
	tcp := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serve)}
	go func() { _ = udp.ActivateAndServe() }()
	go func() { _ = tcp.ActivateAndServe() }()
	t.Cleanup(func() {
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
	})
	return s
}

// listenBoth binds UDP and TCP on one free port. The UDP port the kernel
// picks may be taken for TCP, so it tries a few.
func listenBoth() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("no port free for both UDP and TCP: %w", lastErr)
}

// SetTXT replaces the TXT records of name; each record is given as its
// strings (a long value split in several). No records removes the name.
func (s *Server) SetTXT(name string, records ...[]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(dns.Fqdn(name))
	if len(records) == 0 {
		delete(s.txt, key)
		return
	}
	s.txt[key] = records
}

// Queries counts the queries answered so far.
func (s *Server) Queries() int64 { return s.queries.Load() }

// QueriesFor counts the queries for name answered so far.
func (s *Server) QueriesFor(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perName[strings.ToLower(dns.Fqdn(name))]
}

func (s *Server) serve(w dns.ResponseWriter, r *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range r.Question {
		s.perName[strings.ToLower(q.Name)]++
		records, ok := s.txt[strings.ToLower(q.Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
			continue
		}
		if q.Qtype != dns.TypeTXT {
			continue
		}
		for _, rec := range records {
			m.Answer = append(m.Answer, &dns.TXT{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
				Txt: rec,
			})
		}
	}
	_ = w.WriteMsg(m)
}
