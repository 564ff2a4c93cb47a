package secretbox

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func testBox(t *testing.T, fill byte) *Box {
	t.Helper()
	b, err := New(bytes.Repeat([]byte{fill}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpen(t *testing.T) {
	box, other := testBox(t, 1), testBox(t, 2)
	sealed, err := box.Seal("s3cr3t-value", "proj\x00API_KEY")
	if err != nil {
		t.Fatal(err)
	}
	flipped := []byte(sealed)
	flipped[len(flipped)-3] ^= 1
	tests := []struct {
		name    string
		box     *Box
		sealed  string
		ad      string
		want    string
		wantErr bool
	}{
		{"same key and ad", box, sealed, "proj\x00API_KEY", "s3cr3t-value", false},
		{"another variable", box, sealed, "proj\x00OTHER", "", true},
		{"another project", box, sealed, "proj2\x00API_KEY", "", true},
		{"another key", other, sealed, "proj\x00API_KEY", "", true},
		{"tampered", box, string(flipped), "proj\x00API_KEY", "", true},
		{"no prefix", box, strings.TrimPrefix(sealed, prefix), "proj\x00API_KEY", "", true},
		{"too short", box, prefix + "AAAA", "proj\x00API_KEY", "", true},
		{"not base64", box, prefix + "!!!", "proj\x00API_KEY", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.box.Open(tt.sealed, tt.ad)
			if tt.wantErr {
				if !errors.Is(err, ErrOpen) {
					t.Fatalf("Open: %q, %v; want ErrOpen", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Open: %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestSealIsFreshAndOpaque: the same value sealed twice differs (a fresh
// nonce each time) and neither holds the plaintext.
func TestSealIsFreshAndOpaque(t *testing.T) {
	box := testBox(t, 3)
	a, _ := box.Seal("the-same-plaintext", "ad")
	b, _ := box.Seal("the-same-plaintext", "ad")
	if a == b {
		t.Fatal("two seals of one value are equal: the nonce is not fresh")
	}
	for _, s := range []string{a, b} {
		raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, prefix))
		if bytes.Contains(raw, []byte("the-same-plaintext")) || strings.Contains(s, "the-same-plaintext") {
			t.Fatalf("sealed value holds the plaintext: %q", s)
		}
	}
}

func TestParseKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"padded", base64.StdEncoding.EncodeToString(key), true},
		{"unpadded with newline", base64.RawStdEncoding.EncodeToString(key) + "\n", true},
		{"16 bytes", base64.StdEncoding.EncodeToString(key[:16]), false},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(key, 1)), false},
		{"hex", strings.Repeat("ab", KeySize), false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKey(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseKey: %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && !bytes.Equal(got, key) {
				t.Fatalf("ParseKey = %x", got)
			}
		})
	}
}

// TestKeyFile: created once with mode 0600, read back the same, shared by
// racing callers, and a corrupt file is an error rather than replaced.
func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "secret.key")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadOrCreateKeyFile(path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) || len(k) != KeySize {
			t.Fatalf("racing callers got different keys: %x vs %x", k, keys[0])
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v, %v; want 0600", fi, err)
	}
	again, err := LoadOrCreateKeyFile(path)
	if err != nil || !bytes.Equal(again, keys[0]) {
		t.Fatalf("reload: %x, %v", again, err)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeyFile(path); err == nil {
		t.Fatal("a corrupt key file was accepted")
	}
}

// BenchmarkSealOpen: one 64-byte secret sealed and opened.
func BenchmarkSealOpen(b *testing.B) {
	box, err := New(bytes.Repeat([]byte{9}, KeySize))
	if err != nil {
		b.Fatal(err)
	}
	value := strings.Repeat("s", 64)
	for b.Loop() {
		sealed, err := box.Seal(value, "project\x00KEY")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := box.Open(sealed, "project\x00KEY"); err != nil {
			b.Fatal(err)
		}
	}
}
