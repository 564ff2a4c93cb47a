package tlsissuer

import (
	"crypto/x509"
	"io"
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/pebbletest"
)

// pebble is Let's Encrypt's test ACME server, run in the test process by
// pebbletest. Its validation authority does real HTTP-01 and TLS-ALPN-01
// requests, to the ports it is given, at the addresses the test's DNS
// server returns. The fields are the rig's names for srv's.
type pebble struct {
	srv       *pebbletest.Server
	directory string         // ACME directory URL
	trust     *x509.CertPool // for Pebble's own HTTPS (httptest's certificate)
	trustPEM  []byte         // the same, as PEM
	issuing   *x509.CertPool // Pebble's issuing root
}

// startPebble starts Pebble validating challenges on httpPort and tlsPort of
// whatever dnsAddr resolves names to; its log goes to logs.
func startPebble(t *testing.T, httpPort, tlsPort int, dnsAddr string, logs io.Writer) *pebble {
	t.Helper()
	s := pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort, TLSPort: tlsPort, DNS: dnsAddr, Log: logs})
	return &pebble{srv: s, directory: s.DirectoryURL, trust: s.Trust, trustPEM: s.TrustPEM, issuing: s.Roots}
}

func (p *pebble) requestCount() int { return p.srv.Requests() }

// ordersFor returns how many orders named domain.
func (p *pebble) ordersFor(domain string) int { return p.srv.OrdersFor(domain) }

// startDNS serves 127.0.0.1 as the address of every name except those with
// the label "nowhere", which have no address: see pebbletest.StartDNS.
func startDNS(t *testing.T) string { return pebbletest.StartDNS(t) }
