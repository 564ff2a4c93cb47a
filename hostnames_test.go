package libra

import (
	"strings"
	"testing"
)

func TestHostPolicyReserved(t *testing.T) {
	p := NewHostPolicy("Sites.Example.NET.", []string{" api.example.com ", "API.Other.Org.:443", ""})
	tests := []struct {
		name, host string
		reserved   bool
		api        bool
		why        string
	}{
		{"API_HOSTS entry", "api.example.com", true, true, "API"},
		{"API_HOSTS entry, upper case", "API.EXAMPLE.COM", true, true, "API"},
		{"API_HOSTS entry, trailing dot", "api.example.com.", true, true, "API"},
		{"API_HOSTS entry, with port", "api.example.com:8443", true, true, "API"},
		{"API_HOSTS entry configured with port and dot", "api.other.org", true, true, "API"},
		{"sub-name of an API host is not the API host", "x.api.example.com", false, false, ""},
		{"sites domain", "sites.example.net", true, true, "sites domain"},
		{"sites domain, mixed case and dot", "SITES.example.NET.", true, true, "sites domain"},
		{"under the sites domain", "shop.sites.example.net", true, false, "sites domain"},
		{"deep under the sites domain", "a.b.SITES.example.net.", true, false, "sites domain"},
		{"suffix without a dot is not under it", "evilsites.example.net", false, false, ""},
		{"IPv4", "10.0.0.1", true, true, "IP"},
		{"IPv4 with port", "127.0.0.1:3008", true, true, "IP"},
		{"IPv6", "::1", true, true, "IP"},
		{"IPv6 bracketed with port", "[2001:db8::1]:443", true, true, "IP"},
		{"IPv6 bracketed", "[::1]", true, true, "IP"},
		{"localhost", "localhost", true, true, "localhost"},
		{"localhost, upper case with dot", "LocalHost.", true, true, "localhost"},
		{"under localhost", "api.localhost", true, true, "localhost"},
		{"ordinary domain", "www.example.com", false, false, ""},
		{"ordinary domain, upper case", "WWW.Example.COM.", false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Reserved(tt.host)
			if (err != nil) != tt.reserved {
				t.Fatalf("Reserved(%q) = %v, want reserved %v", tt.host, err, tt.reserved)
			}
			if err != nil && !strings.Contains(err.Error(), tt.why) {
				t.Errorf("Reserved(%q) = %q, want it to mention %q", tt.host, err, tt.why)
			}
			if err := p.CheckCustomDomain(tt.host); tt.reserved && err == nil {
				t.Errorf("CheckCustomDomain(%q) accepted a reserved name", tt.host)
			}
			if got := p.IsAPIHost(tt.host); got != tt.api {
				t.Errorf("IsAPIHost(%q) = %v, want %v", tt.host, got, tt.api)
			}
		})
	}
}

func TestHostPolicyLocalhostSitesDomain(t *testing.T) {
	// With the default sites domain, names under localhost are sites, not
	// the API, and still never custom domains.
	p := NewHostPolicy("", nil)
	for _, host := range []string{"shop.localhost", "abc.localhost:3008"} {
		if p.IsAPIHost(host) {
			t.Errorf("IsAPIHost(%q) = true with sites domain localhost", host)
		}
		if p.Reserved(host) == nil {
			t.Errorf("Reserved(%q) = nil", host)
		}
	}
	if !p.IsAPIHost("localhost:3008") {
		t.Error("localhost itself is not the API")
	}
}
