// Package webhook delivers a project's webhooks: Standard Webhooks signing
// (https://www.standardwebhooks.com), the HTTP attempt with its guard
// against private addresses, and the River worker that retries on the
// spec's schedule. The deliveries themselves are written by the stores, in
// the transaction of the change they announce (libra.WebhookStore).
//
// Signing is implemented here rather than with the spec's Go library: the
// module proxy serves only its v0.0.1 tag, which predates the 2026 fix that
// refuses empty secrets, and no later pseudo-version can be had. It is
// proved against the spec's published test vector (sign_test.go).
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix marks a symmetric Standard Webhooks secret.
const SecretPrefix = "whsec_"

// secretBytes is the key length: the spec asks for 24 to 64 bytes.
const secretBytes = 32

// NewSecret returns a fresh signing secret, "whsec_" + base64 of 32 random
// bytes.
func NewSecret() string {
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// ErrEmptySecret refuses to sign with no key: an HMAC with an empty key is
// a signature anyone can make.
var ErrEmptySecret = errors.New("webhook secret is empty")

// key decodes a secret, with or without its prefix.
func key(secret string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("decode webhook secret: %w", err)
	}
	if len(k) == 0 {
		return nil, ErrEmptySecret
	}
	return k, nil
}

// Sign returns the webhook-signature header value for a message:
// "v1," + base64(HMAC-SHA256(key, "{id}.{unix seconds}.{body}")).
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	k, err := key(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, k)
	mac.Write([]byte(msgID + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}
