package libra

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// DigestPrefix starts every artifact digest; the rest is 64 lowercase hex digits.
const DigestPrefix = "sha256:"

// maxManifestBytes bounds what LoadManifest reads: a manifest of MaxFiles
// entries with the longest paths fits well under it, and a corrupt or hostile
// blob cannot make the reader allocate without limit.
const maxManifestBytes = 32 << 20

// CheckDigest accepts only the canonical form "sha256:" followed by 64
// lowercase hex digits. Stores build paths and object keys from digests, so
// the one spelling is also what keeps a digest from naming anything else.
func CheckDigest(d string) error {
	if !strings.HasPrefix(d, DigestPrefix) {
		return fmt.Errorf("digest %.80q does not start with %q", d, DigestPrefix)
	}
	hex := d[len(DigestPrefix):]
	if len(hex) != 64 {
		return fmt.Errorf("digest %.80q does not have 64 hex digits", d)
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("digest %.80q is not lowercase hex", d)
		}
	}
	return nil
}

// PutManifest stores m as JSON and returns its digest. The encoding is
// deterministic (encoding/json sorts map keys), so publishing the same file
// set twice yields the same digest and one stored blob.
func PutManifest(ctx context.Context, store ArtifactStore, m Manifest) (string, error) {
	if m.Files == nil {
		// "files": {} rather than null, so readers need no special case.
		m.Files = map[string]ManifestFile{}
	}
	if err := checkManifest(&m); err != nil {
		return "", err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode manifest: %w", err)
	}
	digest, _, err := store.Put(ctx, bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("store manifest: %w", err)
	}
	return digest, nil
}

// LoadManifest reads and checks the manifest stored under digest. A missing
// blob gives an error wrapping ErrNotFound. Every path and digest in it is
// checked, so whoever serves from it can trust the names.
func LoadManifest(ctx context.Context, store ArtifactStore, digest string) (*Manifest, error) {
	if err := CheckDigest(digest); err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	rc, err := store.Open(ctx, digest)
	if err != nil {
		return nil, fmt.Errorf("load manifest %s: %w", digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", digest, err)
	}
	if len(b) > maxManifestBytes {
		return nil, fmt.Errorf("manifest %s is larger than %d bytes", digest, maxManifestBytes)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode manifest %s: %w", digest, err)
	}
	if m.Files == nil {
		m.Files = map[string]ManifestFile{}
	}
	if err := checkManifest(&m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", digest, err)
	}
	return &m, nil
}

func checkManifest(m *Manifest) error {
	for p, f := range m.Files {
		if err := CheckPath(p); err != nil {
			return fmt.Errorf("manifest path %.80q: %w", p, err)
		}
		if err := CheckDigest(f.Digest); err != nil {
			return fmt.Errorf("manifest path %.80q: %w", p, err)
		}
		if f.Size < 0 {
			return fmt.Errorf("manifest path %.80q: negative size", p)
		}
		for _, e := range [...]struct {
			name string
			enc  *Encoded
		}{{"gzip", f.Gzip}, {"brotli", f.Brotli}} {
			if e.enc == nil {
				continue
			}
			if err := CheckDigest(e.enc.Digest); err != nil {
				return fmt.Errorf("manifest path %.80q, %s variant: %w", p, e.name, err)
			}
			if e.enc.Size < 0 {
				return fmt.Errorf("manifest path %.80q, %s variant: negative size", p, e.name)
			}
		}
	}
	if m.BuildLog != nil {
		if err := CheckDigest(m.BuildLog.Digest); err != nil {
			return fmt.Errorf("manifest build log: %w", err)
		}
	}
	if m.Worker != nil {
		return m.Worker.check()
	}
	return nil
}
