package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	libra "github.com/libra-deploy/libra-deploy"
	artifacts3 "github.com/libra-deploy/libra-deploy/artifact/s3"
	"github.com/libra-deploy/libra-deploy/gc"
	"github.com/libra-deploy/libra-deploy/internal/s3test"
)

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return libra.DigestPrefix + hex.EncodeToString(s[:])
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, bucket, prefix string
		ok                 bool
	}{
		{"s3://my-bucket", "my-bucket", "", true},
		{"s3://my-bucket/", "my-bucket", "", true},
		{"s3://my-bucket/a/b", "my-bucket", "a/b/", true},
		{"s3://my-bucket/a/b/", "my-bucket", "a/b/", true},
		{"http://my-bucket/a", "", "", false},
		{"s3://UPPER", "", "", false},
		{"s3://ab", "", "", false},
		{"s3://user:pw@bucket1", "", "", false},
		{"s3://bucket1?x=1", "", "", false},
		{"my-bucket", "", "", false},
	} {
		b, p, err := artifacts3.ParseURL(tc.in)
		if (err == nil) != tc.ok || b != tc.bucket || p != tc.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q, ok=%v", tc.in, b, p, err, tc.bucket, tc.prefix, tc.ok)
		}
	}
}

func TestStoreAgainstVersitygw(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	st := srv.Store(ctx, "node-test")
	if err := st.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"small", 100},
		{"exactly the memory spool", 1 << 20},
		{"spooled to a file", 3<<20 + 17},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content := randomBytes(t, tc.size)
			digest, size, err := st.Put(ctx, bytes.NewReader(content))
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if digest != digestOf(content) || size != int64(tc.size) {
				t.Fatalf("Put = %s, %d; want %s, %d", digest, size, digestOf(content), tc.size)
			}
			rc, err := st.Open(ctx, digest)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("Open read %d bytes (err %v), want the %d stored", len(got), err, len(content))
			}
			n, mod, err := st.Stat(ctx, digest)
			if err != nil || n != int64(tc.size) || time.Since(mod) > time.Minute {
				t.Fatalf("Stat = %d, %v, %v; want %d, about now", n, mod, err, tc.size)
			}
		})
	}
}

func TestStoreMissingBlobIsNotFound(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	st := srv.Store(ctx, "")
	missing := digestOf([]byte("never stored"))
	if _, err := st.Open(ctx, missing); !errors.Is(err, libra.ErrNotFound) {
		t.Errorf("Open of a missing blob: %v, want ErrNotFound", err)
	}
	if _, _, err := st.Stat(ctx, missing); !errors.Is(err, libra.ErrNotFound) {
		t.Errorf("Stat of a missing blob: %v, want ErrNotFound", err)
	}
	if _, err := st.Open(ctx, "sha256:../../etc/passwd"); err == nil || errors.Is(err, libra.ErrNotFound) {
		t.Errorf("Open of a malformed digest: %v, want a digest error", err)
	}
}

// Twenty nodes storing one blob at once all succeed, and it is there once.
func TestStoreConcurrentIdenticalPut(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	st := srv.Store(ctx, "p")
	content := randomBytes(t, 2<<20)
	const writers = 20
	var wg sync.WaitGroup
	errs := make([]error, writers)
	digests := make([]string, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			digests[i], _, errs[i] = st.Put(ctx, bytes.NewReader(content))
		}()
	}
	wg.Wait()
	for i := range writers {
		if errs[i] != nil || digests[i] != digestOf(content) {
			t.Fatalf("writer %d: %s, %v", i, digests[i], errs[i])
		}
	}
	var found []gc.Blob
	if err := artifacts3.NewBlobs(st).Walk(ctx, func(b gc.Blob) error { found = append(found, b); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].Digest != digestOf(content) || found[0].Size != int64(len(content)) {
		t.Fatalf("listed %+v, want the one blob", found)
	}
}

// The server checks the SHA-256 the upload declares: content that does not
// match is refused and not stored.
func TestServerRefusesWrongChecksum(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	client := srv.Client(ctx)
	sent := []byte("the content that was sent")
	claimed := sha256.Sum256([]byte("some other content"))
	key := "sha256/" + hex.EncodeToString(claimed[:])
	_, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &srv.Bucket, Key: &key, Body: bytes.NewReader(sent),
		ContentLength:  aws.Int64(int64(len(sent))),
		IfNoneMatch:    aws.String("*"),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(claimed[:])),
	})
	if err == nil {
		t.Fatal("the server accepted content whose checksum does not match")
	}
	t.Logf("refused as expected: %v", err)
	st := srv.Store(ctx, "")
	if _, err := st.Open(ctx, libra.DigestPrefix+hex.EncodeToString(claimed[:])); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("after the refused upload, Open: %v, want ErrNotFound", err)
	}
}

// Storing content again refreshes its time, as artifact/fs does: the
// collector's grace period counts from the last store. Small blobs find out
// by a refused conditional upload, large ones by asking first.
func TestStorePutAgainRefreshesTime(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	st := srv.Store(ctx, "")
	for _, tc := range []struct {
		name string
		size int
	}{{"small", 100}, {"large", 1 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			content := randomBytes(t, tc.size)
			digest, _, err := st.Put(ctx, bytes.NewReader(content))
			if err != nil {
				t.Fatal(err)
			}
			_, first, _ := st.Stat(ctx, digest)
			time.Sleep(1100 * time.Millisecond) // S3 times have one-second resolution
			if _, _, err := st.Put(ctx, bytes.NewReader(content)); err != nil {
				t.Fatalf("second Put: %v", err)
			}
			_, second, err := st.Stat(ctx, digest)
			if err != nil || !second.After(first) {
				t.Fatalf("time after the second Put %v (err %v), want after %v", second, err, first)
			}
		})
	}
}

// Remove keeps what is young or referenced elsewhere, takes what is old,
// and ignores keys that are not blobs.
func TestBlobsWalkAndRemove(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	st := srv.Store(ctx, "gc")
	blobs := artifacts3.NewBlobs(st)
	old, _, err := st.Put(ctx, strings.NewReader("old"))
	if err != nil {
		t.Fatal(err)
	}
	stray := "gc/sha256/not-a-digest"
	if _, err := srv.Client(ctx).PutObject(ctx, &s3.PutObjectInput{Bucket: &srv.Bucket, Key: &stray, Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	var listed []string
	if err := blobs.Walk(ctx, func(b gc.Blob) error { listed = append(listed, b.Digest); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0] != old {
		t.Fatalf("Walk listed %v, want only %s", listed, old)
	}
	if removed, err := blobs.Remove(ctx, old, time.Now().Add(-time.Hour)); err != nil || removed {
		t.Fatalf("Remove of a blob younger than the cutoff = %v, %v; want kept", removed, err)
	}
	if removed, err := blobs.Remove(ctx, old, time.Now().Add(time.Minute)); err != nil || !removed {
		t.Fatalf("Remove of a blob older than the cutoff = %v, %v; want removed", removed, err)
	}
	if _, err := st.Open(ctx, old); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("Open after Remove: %v, want ErrNotFound", err)
	}

	// Stored again after the cutoff: the listing's LastModified is older,
	// but the time the second Put recorded keeps it.
	again, _, err := st.Put(ctx, strings.NewReader("stored again"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	cutoff := time.Now()
	if _, _, err := st.Put(ctx, strings.NewReader("stored again")); err != nil {
		t.Fatal(err)
	}
	if removed, err := blobs.Remove(ctx, again, cutoff); err != nil || removed {
		t.Fatalf("Remove of a blob stored again after the cutoff = %v, %v; want kept", removed, err)
	}
	if removed, err := blobs.Remove(ctx, old, time.Now().Add(time.Minute)); err != nil || removed {
		t.Fatalf("Remove of a gone blob = %v, %v; want false, nil", removed, err)
	}
}

// With the server down, Put fails (the API turns that into a 503) rather
// than hanging or reporting success.
func TestStorePutFailsWhenServerDown(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	st := srv.Store(ctx, "")
	srv.Stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	if _, _, err := st.Put(ctx, strings.NewReader("nobody listens")); err == nil {
		t.Fatal("Put succeeded with the server stopped")
	}
	t.Logf("Put failed after %v with the server down", time.Since(start).Round(time.Millisecond))
	if err := st.Check(ctx); err == nil {
		t.Fatal("Check succeeded with the server stopped")
	}
}

// A server that accepts connections and never answers makes Put fail
// within a bound rather than hold the request forever.
func TestStorePutFailsWhenServerHangs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	st, err := artifacts3.New(context.Background(), artifacts3.Options{
		Bucket: "hanging", Endpoint: "http://" + ln.Addr().String(), Region: "us-east-1",
		AccessKeyID: "k", SecretAccessKey: "s", TempDir: t.TempDir(), ResponseTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err = st.Put(context.Background(), strings.NewReader("into the void"))
	took := time.Since(start)
	t.Logf("Put against a hanging server failed after %v: %v", took.Round(time.Millisecond), err)
	if err == nil {
		t.Fatal("Put succeeded against a server that never answers")
	}
	if took > 30*time.Second {
		t.Fatalf("Put took %v to give up; want well under 30s with a 1s response timeout", took)
	}
}
