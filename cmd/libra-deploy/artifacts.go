package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/artifact/cache"
	artifactfs "github.com/libra-deploy/libra-deploy/artifact/fs"
	artifacts3 "github.com/libra-deploy/libra-deploy/artifact/s3"
	"github.com/libra-deploy/libra-deploy/gc"
)

// defaultBlobCacheMB is the local blob cache's size when ARTIFACT_STORE is
// an object store.
const defaultBlobCacheMB = 1024

// artifactStores is where a node keeps and reads blobs.
type artifactStores struct {
	// Store is the record: the API and the deployment steps write to it.
	Store libra.ArtifactStore
	// Serving is what the site host reads: the store itself on local
	// disk, or a local cache in front of an object store.
	Serving libra.ArtifactStore
	// Blobs lists and removes blobs for the garbage collector.
	Blobs gc.Blobs
	// Check reports whether the store can be reached.
	Check func(context.Context) error
	// Kind names the store in logs: "local" or the s3:// URL.
	Kind string
}

// artifactConfig is the artifact store's part of the environment. The AWS
// credentials are read by name here and by no one else, so they never
// reach a log line or a build.
type artifactConfig struct {
	URL         string // ARTIFACT_STORE; empty: the data directory
	Endpoint    string // S3_ENDPOINT
	Region      string // S3_REGION
	AccessKey   string // AWS_ACCESS_KEY_ID
	SecretKey   string // AWS_SECRET_ACCESS_KEY
	CacheMB     int    // BLOB_CACHE_MB
	dataDir     string
	artifactDir string
}

func loadArtifactConfig(c *config) artifactConfig {
	return artifactConfig{
		URL:         env("ARTIFACT_STORE", ""),
		Endpoint:    env("S3_ENDPOINT", ""),
		Region:      env("S3_REGION", "us-east-1"),
		AccessKey:   env("AWS_ACCESS_KEY_ID", ""),
		SecretKey:   env("AWS_SECRET_ACCESS_KEY", ""),
		CacheMB:     envInt("BLOB_CACHE_MB", defaultBlobCacheMB),
		dataDir:     c.DataDir,
		artifactDir: c.artifactsDir(),
	}
}

// openArtifacts opens the artifact store ARTIFACT_STORE names, for serve:
// the data directory's artifacts/ by default, or an S3 bucket, read through
// a blob cache in the data directory.
func openArtifacts(ctx context.Context, c *config, logger *slog.Logger) (*artifactStores, error) {
	ac := loadArtifactConfig(c)
	stores, err := openArtifactStore(ctx, ac)
	if err != nil || ac.URL == "" {
		return stores, err
	}
	if ac.CacheMB < 1 {
		return nil, fmt.Errorf("BLOB_CACHE_MB must be at least 1, got %d", ac.CacheMB)
	}
	// The cache is serve's alone (it holds the data directory's lock):
	// opening it removes the temporary files of fills in progress.
	blobCache, err := cache.New(stores.Store, filepath.Join(ac.dataDir, "blob-cache"), int64(ac.CacheMB)<<20)
	if err != nil {
		return nil, err
	}
	stores.Serving = blobCache
	logger.Info("artifact store", "store", stores.Kind, "endpoint", ac.Endpoint, "blob_cache_mb", ac.CacheMB)
	return stores, nil
}

// openArtifactStore opens the store without a cache, for commands that run
// beside serve (gc, disk) and only list, read manifests and remove.
func openArtifactStore(ctx context.Context, ac artifactConfig) (*artifactStores, error) {
	if ac.URL == "" {
		return openLocalArtifacts(ac.artifactDir)
	}
	return openS3Artifacts(ctx, ac)
}

func openLocalArtifacts(dir string) (*artifactStores, error) {
	fs, err := artifactfs.New(dir)
	if err != nil {
		return nil, err
	}
	return &artifactStores{Store: fs, Serving: fs, Blobs: gc.NewDirBlobs(fs.Root()),
		Check: func(context.Context) error { return nil }, Kind: "local"}, nil
}

func openS3Artifacts(ctx context.Context, ac artifactConfig) (*artifactStores, error) {
	bucket, prefix, err := artifacts3.ParseURL(ac.URL)
	if err != nil {
		return nil, fmt.Errorf("ARTIFACT_STORE: %w", err)
	}
	// Uploads are spooled here while their digest is computed.
	spool := filepath.Join(ac.dataDir, "tmp")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, fmt.Errorf("create upload spool directory: %w", err)
	}
	st, err := artifacts3.New(ctx, artifacts3.Options{
		Bucket: bucket, Prefix: prefix, Endpoint: ac.Endpoint, Region: ac.Region,
		AccessKeyID: ac.AccessKey, SecretAccessKey: ac.SecretKey, TempDir: spool,
	})
	if err != nil {
		return nil, err
	}
	return &artifactStores{Store: st, Serving: st, Blobs: artifacts3.NewBlobs(st),
		Check: st.Check, Kind: "s3://" + bucket + "/" + prefix}, nil
}
