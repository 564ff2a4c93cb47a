package cloudflare_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/deploytarget/cloudflare"
)

const zoneID = "fedcba9876543210fedcba9876543210"

// publishWith publishes a one-file site of Proj_1 with domains attached.
func (e *env) publishWith(t *testing.T, domains ...string) string {
	t.Helper()
	url, err := e.target.Publish(context.Background(), libra.PublishRequest{ProjectID: "Proj_1",
		Manifest: e.manifest(t, map[string]string{"index.html": "x"}), Artifacts: e.store, Domains: domains})
	if err != nil {
		t.Fatal(err)
	}
	return url
}

func (e *env) states(domains ...string) map[string]libra.TargetDomain {
	return e.target.DomainStates(context.Background(), "Proj_1", domains)
}

// TestWorkersDomainStates: a Workers custom domain the API lists for the
// Worker is active; one it does not is not attached, with the reason when
// Cloudflare could never attach it.
func TestWorkersDomainStates(t *testing.T) {
	e := newEnv(t, cloudflare.Config{ZoneID: zoneID, ZoneName: "example.com"})
	e.publishWith(t, "shop.example.com")
	got := e.states("shop.example.com", "later.example.com", "shop.other.org")
	for _, tc := range []struct {
		domain, status, errPart string
	}{
		{"shop.example.com", "active", ""},
		{"later.example.com", "not_attached", ""},
		{"shop.other.org", "not_attached", "not in the zone example.com"},
	} {
		st := got[tc.domain]
		if st.Status != tc.status || st.Kind != "workers_custom_domain" || st.Target != "cloudflare" || st.CheckedAt.IsZero() {
			t.Errorf("%s: %+v, want %s", tc.domain, st, tc.status)
		}
		if joined := strings.Join(st.Errors, "; "); tc.errPart == "" && joined != "" || !strings.Contains(joined, tc.errPart) {
			t.Errorf("%s: errors %q, want %q", tc.domain, joined, tc.errPart)
		}
	}
}

// TestCustomHostnameAttachedAndShown: in SaaS mode publishing creates the
// custom hostname once, with the Worker's own custom domain as its origin,
// and its state shows Cloudflare's TXT records and errors until Cloudflare
// activates it.
func TestCustomHostnameAttachedAndShown(t *testing.T) {
	e := newEnv(t, cloudflare.Config{ZoneID: zoneID, ZoneName: "example.com", DomainMode: "saas", StateTTL: -1})
	if url := e.publishWith(t, "shop.customer.org"); url != "https://shop.customer.org/" {
		t.Fatalf("url = %s", url)
	}
	e.publishWith(t, "shop.customer.org")
	hosts := e.fake.CustomHostnames()
	h, ok := hosts["shop.customer.org"]
	if len(hosts) != 1 || !ok || h.Origin != "libra-proj_1.example.com" || e.fake.Domains()["libra-proj_1.example.com"] != "libra-proj_1" {
		t.Fatalf("custom hostnames %+v, Workers domains %v: want one, its origin the Worker's domain", hosts, e.fake.Domains())
	}
	if n := e.fake.Calls("POST /zones/{zone}/custom_hostnames"); n != 1 {
		t.Fatalf("%d creations, want 1 (a republish keeps the existing hostname)", n)
	}
	st := e.states("shop.customer.org")["shop.customer.org"]
	want := libra.TargetDomain{Target: "cloudflare", Kind: "custom_hostname", Status: "pending", SSLStatus: "pending_validation",
		Ownership:     &libra.DNSRecord{Type: "TXT", Name: h.OwnershipName, Value: h.OwnershipValue},
		SSLValidation: []libra.DNSRecord{{Type: "TXT", Name: h.SSLTXTName, Value: h.SSLTXTValue}},
		Errors:        h.VerificationErrors, CheckedAt: st.CheckedAt}
	if !reflect.DeepEqual(st, want) || h.OwnershipName != "_cf-custom-hostname.shop.customer.org" {
		t.Fatalf("pending state\n got %+v\nwant %+v", st, want)
	}
	e.fake.SetCustomHostname("shop.customer.org", "active", "active")
	st = e.states("shop.customer.org")["shop.customer.org"]
	if st.Status != "active" || st.SSLStatus != "active" || len(st.Errors) != 0 || len(st.SSLValidation) != 0 {
		t.Fatalf("after Cloudflare's activation: %+v", st)
	}
	if st := e.states("unknown.customer.org")["unknown.customer.org"]; st.Status != "not_attached" {
		t.Fatalf("a domain Cloudflare lacks: %+v", st)
	}
}

// TestDomainStatesCachedAndOutages: answers are reused within the TTL; an
// outage is shown as unknown with its reason, and not cached.
func TestDomainStatesCachedAndOutages(t *testing.T) {
	e := newEnv(t, cloudflare.Config{ZoneID: zoneID, ZoneName: "example.com", DomainMode: "saas", StateTTL: time.Hour})
	e.fake.Fail("/custom_hostnames", 503, 1)
	st := e.states("shop.customer.org")["shop.customer.org"]
	if st.Status != "unknown" || len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "503") {
		t.Fatalf("during an outage: %+v, want unknown naming the 503", st)
	}
	e.publishWith(t, "shop.customer.org")
	reads := e.fake.Calls("GET /zones/{zone}/custom_hostnames")
	for range 3 {
		if st := e.states("shop.customer.org")["shop.customer.org"]; st.Status != "pending" {
			t.Fatalf("after the outage: %+v, want pending", st)
		}
	}
	if n := e.fake.Calls("GET /zones/{zone}/custom_hostnames") - reads; n != 1 {
		t.Fatalf("%d reads for 3 answers within the TTL, want 1", n)
	}
}

// TestDomainStatesTimeout: a Cloudflare that does not answer holds a
// domain listing no longer than the state timeout.
func TestDomainStatesTimeout(t *testing.T) {
	e := newEnv(t, cloudflare.Config{ZoneID: zoneID, ZoneName: "example.com", StateTimeout: 200 * time.Millisecond})
	e.fake.Delay("/workers/domains", 5*time.Second)
	start := time.Now()
	st := e.states("shop.example.com")["shop.example.com"]
	took := time.Since(start)
	t.Logf("unanswered state read gave up after %v", took)
	if st.Status != "unknown" || !strings.Contains(strings.Join(st.Errors, ""), "timed out") || took > 3*time.Second {
		t.Fatalf("after %v: %+v, want unknown, timed out", took, st)
	}
}

// TestDomainStatesAcrossNodes: a node that did not attach a domain (a
// second Target on the same account, with its own cache) shows the state
// the first one's deploy left on Cloudflare, and sees Cloudflare's later
// change once its cached answer is older than the TTL.
func TestDomainStatesAcrossNodes(t *testing.T) {
	e := newEnv(t, cloudflare.Config{ZoneID: zoneID, ZoneName: "example.com", DomainMode: "saas"})
	e.publishWith(t, "shop.customer.org")
	nodeB, err := cloudflare.New(cloudflare.Config{APIBase: e.url, AccountID: account, Token: token, ZoneID: zoneID,
		ZoneName: "example.com", DomainMode: "saas", StateTTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	read := func() string {
		return nodeB.DomainStates(context.Background(), "Proj_1", []string{"shop.customer.org"})["shop.customer.org"].Status
	}
	if got := read(); got != "pending" {
		t.Fatalf("node B sees %q, want pending", got)
	}
	e.fake.SetCustomHostname("shop.customer.org", "active", "active")
	deadline := time.Now().Add(5 * time.Second)
	for read() != "active" {
		if time.Now().After(deadline) {
			t.Fatal("node B never saw the hostname become active")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
