// Package secretbox encrypts small values (build secrets) for storage with
// AES-256-GCM. Each value gets a fresh random nonce, and the caller binds it
// to where it belongs with additional data (a project id and a variable
// name), so a sealed value copied into another row does not open there.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the key's length in bytes (AES-256).
const KeySize = 32

// prefix marks the sealed format, so that a later format (another cipher, a
// rotated key) can be told apart from this one.
const prefix = "v1:"

// ErrOpen is returned for a value that does not open with this key and
// additional data: tampered, moved to another row, or sealed with another key.
var ErrOpen = errors.New("secretbox: value does not decrypt with this key")

// Box seals and opens values with one key.
type Box struct{ aead cipher.AEAD }

// New returns a Box for a KeySize-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secretbox: the key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secretbox: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secretbox: %w", err)
	}
	return &Box{aead: aead}, nil
}

// ParseKey decodes a key given as standard base64 (with or without padding)
// of exactly KeySize bytes, as `openssl rand -base64 32` prints it.
func ParseKey(encoded string) ([]byte, error) {
	s := strings.TrimSpace(encoded)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("decodes to %d bytes, want %d (make one with: openssl rand -base64 32)", len(key), KeySize)
	}
	return key, nil
}

// Seal encrypts plaintext bound to ad and returns it as text to store.
func (b *Box) Seal(plaintext, ad string) (string, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secretbox: nonce: %w", err)
	}
	sealed := b.aead.Seal(nonce, nonce, []byte(plaintext), []byte(ad))
	return prefix + base64.StdEncoding.EncodeToString(sealed), nil
}

// Open decrypts what Seal returned for the same ad; ErrOpen when it does
// not authenticate.
func (b *Box) Open(sealed, ad string) (string, error) {
	enc, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return "", fmt.Errorf("%w: unknown format", ErrOpen)
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(raw) < b.aead.NonceSize()+b.aead.Overhead() {
		return "", fmt.Errorf("%w: malformed", ErrOpen)
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(ad))
	if err != nil {
		return "", ErrOpen
	}
	return string(plain), nil
}

// LoadOrCreateKeyFile reads the base64 key in path, or, when there is no
// such file, creates it with a new random key and mode 0600. O_EXCL makes
// two processes starting at once agree: the one that loses reads the
// winner's key.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	key, err := readKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key = make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("secretbox: new key: %w", err)
	}
	if err := writeKeyFile(path, key); errors.Is(err, fs.ErrExist) {
		return readKeyFile(path)
	} else if err != nil {
		return nil, err
	}
	return key, nil
}

func readKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secret key file: %w", err)
	}
	key, err := ParseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("secret key file %s: %w", path, err)
	}
	return key, nil
}

// writeKeyFile writes the key to a temporary file first and links it into
// place, so that a reader never sees a half-written key.
func writeKeyFile(path string, key []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("secret key file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-key-*")
	if err != nil {
		return fmt.Errorf("secret key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("secret key file: %w", err)
	}
	// CreateTemp makes the file 0600 already; link fails if path exists.
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("secret key file: %w", err)
	}
	return nil
}
