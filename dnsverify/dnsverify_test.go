package dnsverify_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/dnsverify"
	"github.com/libra-deploy/libra-deploy/internal/dnstest"
)

func TestCheck(t *testing.T) {
	srv := dnstest.Start(t)
	const token = "libra-verify-0123456789abcdef"
	srv.SetTXT("_libra-deploy.right.example", []string{"unrelated"}, []string{token})
	srv.SetTXT("_libra-deploy.split.example", []string{"libra-verify-0123", "456789abcdef"})
	srv.SetTXT("_libra-deploy.wrong.example", []string{"libra-verify-ffff"})
	srv.SetTXT("_libra-deploy.spaced.example", []string{" " + token + " "})

	v, err := dnsverify.New(srv.Addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		domain               string
		verified, definitive bool
		reason               string
	}{
		{"right.example", true, false, ""},
		{"split.example", true, false, ""},
		{"spaced.example", true, false, ""},
		{"wrong.example", false, true, "does not hold"},
		{"missing.example", false, true, "no TXT record _libra-deploy.missing.example"},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			got := v.Check(context.Background(), tt.domain, token)
			if got.Verified != tt.verified || got.Definitive != tt.definitive || !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("Check(%s) = %+v, want verified %v definitive %v reason ~%q", tt.domain, got, tt.verified, tt.definitive, tt.reason)
			}
		})
	}
}

// A server that never answers is a failed lookup, not a verdict, and the
// check gives up within its timeout.
func TestCheckTimeout(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	v, err := dnsverify.New(pc.LocalAddr().String(), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got := v.Check(context.Background(), "slow.example", "x")
	took := time.Since(start)
	t.Logf("unanswered lookup gave up after %v", took.Round(time.Millisecond))
	if got.Verified || got.Definitive || !strings.Contains(got.Reason, "failed") {
		t.Errorf("Check = %+v, want a failed, non-definitive lookup", got)
	}
	if took > 5*time.Second {
		t.Errorf("check took %v with a 300ms timeout", took)
	}
}

func TestNewRejectsBadResolver(t *testing.T) {
	if _, err := dnsverify.New("no-port", 0); err == nil {
		t.Error("New accepted a resolver without a port")
	}
}
