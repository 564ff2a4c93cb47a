package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/libra-deploy/libra-deploy/internal/secretbox"
)

// secretKeyVar holds the key that seals projects' build secrets: standard
// base64 of 32 random bytes (openssl rand -base64 32). It is read here, not
// kept in config, so that it is never printed with the settings.
const secretKeyVar = "LIBRA_SECRET_KEY"

// secretKeyFile is where a single node keeps its key when LIBRA_SECRET_KEY
// is not set: created on first use, mode 0600, in the data directory.
const secretKeyFile = "secret.key"

// secretBox returns what seals and opens build secrets. A LIBRA_SECRET_KEY
// that does not decode is a start-up error. Cluster mode requires the
// variable: nodes with a key file each would seal secrets the others cannot
// open.
func secretBox(dataDir string, cluster bool) (*lazyBox, error) {
	if v := os.Getenv(secretKeyVar); v != "" {
		key, err := secretbox.ParseKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", secretKeyVar, err)
		}
		box, err := secretbox.New(key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", secretKeyVar, err)
		}
		return &lazyBox{box: box}, nil
	}
	if cluster {
		return nil, fmt.Errorf("%s is required with POSTGRES_URL: every node must seal and open build secrets with the same key (make one with: openssl rand -base64 32)", secretKeyVar)
	}
	return &lazyBox{path: filepath.Join(dataDir, secretKeyFile)}, nil
}

// lazyBox creates or reads the key file the first time a secret is sealed
// or opened, so that a service whose projects have no secrets never makes
// one. A failure is not kept: the next use tries again.
type lazyBox struct {
	path string
	mu   sync.Mutex
	box  *secretbox.Box
}

func (l *lazyBox) get() (*secretbox.Box, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.box != nil {
		return l.box, nil
	}
	key, err := secretbox.LoadOrCreateKeyFile(l.path)
	if err != nil {
		return nil, err
	}
	if l.box, err = secretbox.New(key); err != nil {
		return nil, err
	}
	return l.box, nil
}

// Seal: see secretbox.Box.Seal.
func (l *lazyBox) Seal(plaintext, ad string) (string, error) {
	box, err := l.get()
	if err != nil {
		return "", err
	}
	return box.Seal(plaintext, ad)
}

// Open: see secretbox.Box.Open.
func (l *lazyBox) Open(sealed, ad string) (string, error) {
	box, err := l.get()
	if err != nil {
		return "", err
	}
	return box.Open(sealed, ad)
}

// clusterSecretKey is the LIBRA_SECRET_KEY the local cluster gives its
// nodes: the caller's own, or one kept in the cluster's directory, so that
// a cluster started again on the same directory still opens its secrets.
func clusterSecretKey(dir string) (string, error) {
	if v := os.Getenv(secretKeyVar); v != "" {
		return v, nil
	}
	key, err := secretbox.LoadOrCreateKeyFile(filepath.Join(dir, secretKeyFile))
	if err != nil {
		return "", fmt.Errorf("cluster secret key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}
