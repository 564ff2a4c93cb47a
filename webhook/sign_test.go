package webhook

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks project's published vector: this secret, id,
// timestamp and body sign to this header.
func TestSignSpecVector(t *testing.T) {
	got, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
}

func TestSignRefusesBadSecrets(t *testing.T) {
	for _, secret := range []string{"", "whsec_", "whsec_not base64!"} {
		if _, err := Sign(secret, "msg_1", time.Unix(1, 0), []byte("{}")); err == nil {
			t.Errorf("secret %q: signed, want an error", secret)
		}
	}
}

func TestNewSecret(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	if a == b {
		t.Fatal("two secrets are equal")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, SecretPrefix))
	if !strings.HasPrefix(a, SecretPrefix) || err != nil || len(raw) < 24 || len(raw) > 64 {
		t.Fatalf("secret %q: prefix or length wrong (%d bytes, %v)", a, len(raw), err)
	}
}
