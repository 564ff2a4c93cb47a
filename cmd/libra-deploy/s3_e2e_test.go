package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/s3test"
)

// The artifact store on S3 (versitygw), end to end: the real binary with
// ARTIFACT_STORE=s3://..., its state in SQLite.

const s3Prefix = "node-e2e"

func sha256Hex(content string) string {
	sum := sha256.Sum256([]byte(content))
	return hex.EncodeToString(sum[:])
}

// s3Has reports whether the bucket holds content's blob.
func s3Has(t *testing.T, gw *s3test.Server, content string) bool {
	t.Helper()
	ctx := context.Background()
	_, _, err := gw.Store(ctx, s3Prefix).Stat(ctx, libra.DigestPrefix+sha256Hex(content))
	if err != nil && !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("stat blob in S3: %v", err)
	}
	return err == nil
}

// s3BlobCount counts the blob objects under the test's prefix.
func s3BlobCount(t *testing.T, gw *s3test.Server) int {
	t.Helper()
	ctx := context.Background()
	prefix := s3Prefix + "/sha256/"
	out, err := gw.Client(ctx).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &gw.Bucket, Prefix: &prefix})
	if err != nil {
		t.Fatalf("list bucket: %v", err)
	}
	return len(out.Contents)
}

// adminWith runs an admin subcommand with extra environment (the server's
// own settings are not an admin command's).
func (s *server) adminWith(env []string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command(binary, append(args, "--data-dir", s.dataDir)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("libra-deploy %v: %v\n%s", args, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func TestS3DeployServeAndStoreDown(t *testing.T) {
	gw := s3test.Start(t)
	s := startServer(t, append(gw.Env(s3Prefix), noLimit...)...)
	tok := s.setup("acme", "site")
	s.admin("project", "create", "--org", "acme", "--id", "built")
	s.admin("quota", "set", "--org", "acme", "--limit", "10")

	// Over the inline limit, so the input travels as a blob.
	big := "<!doctype html><p>" + strings.Repeat("large page ", 2<<10) + "</p>"
	static := map[string]string{"index.html": "<h1>static on S3</h1>", "big.html": big}
	id := s.deployWait(tok, site("acme", "site", static), "completed")
	for p, want := range static {
		if r := s.page(id, "/"+p); r.status != 200 || string(r.body) != want {
			t.Fatalf("GET /%s: %d %.80q", p, r.status, r.body)
		}
	}
	if !s3Has(t, gw, big) {
		t.Fatal("the large file is not in the bucket")
	}
	if exists(filepath.Join(s.dataDir, "artifacts", "sha256")) {
		t.Fatal("blobs went to the local disk store too")
	}
	// Served through the node's blob cache (the compressed variant, for a
	// client that accepts gzip), each file under its digest.
	cached, err := os.ReadDir(filepath.Join(s.dataDir, "blob-cache"))
	if err != nil || len(cached) == 0 {
		t.Fatalf("the node's blob cache is empty: %v", err)
	}
	for _, de := range cached {
		b, err := os.ReadFile(filepath.Join(s.dataDir, "blob-cache", de.Name()))
		if err != nil || sha256Hex(string(b)) != de.Name() {
			t.Fatalf("cached file %s does not hold its content (%v)", de.Name(), err)
		}
	}

	// A build: inputs, output, manifest and the full build log in S3.
	r := deployFiles(s, tok, "acme", "built", files(
		"package.json", `{"name":"built","private":true,"scripts":{"build":"node build.js"}}`,
		"build.js", `const fs=require("fs");fs.mkdirSync("dist",{recursive:true});`+
			`fs.writeFileSync("dist/index.html","<p>built on "+(6*7)+"</p>");console.log("built!")`,
	))
	buildID := r.str("deploymentId")
	if st := s.waitFinal(buildID, 120*time.Second); st.str("status") != "completed" {
		t.Fatalf("build: %s", st.body)
	}
	if r := s.page("built", "/"); r.status != 200 || string(r.body) != "<p>built on 42</p>" {
		t.Fatalf("built site: %d %q", r.status, r.body)
	}
	if !s3Has(t, gw, "<p>built on 42</p>") {
		t.Fatal("the build's output is not in the bucket")
	}
	if full := s.do("GET", "/deploy-log?id="+buildID, nil); full.status != 200 || !strings.Contains(string(full.body), "built!") {
		t.Fatalf("full build log from S3: %d %.200s", full.status, full.body)
	}

	// The object store goes away: every deploy is refused, nothing written.
	rows := countRows(t, s, "SELECT count(*) FROM deployments")
	quota := s.admin("quota", "show", "--org", "acme")
	blobs := s3BlobCount(t, gw)
	gw.Stop()
	for name, body := range map[string]map[string]string{
		"inline files only": {"index.html": "<h1>small</h1>"},
		"with a blob":       {"index.html": "x", "big.html": big + "v2"},
	} {
		r := s.deploy(tok, site("acme", "site", body))
		wantCode(t, r, 503, "SERVICE_UNAVAILABLE")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", name)
		}
	}
	if n := countRows(t, s, "SELECT count(*) FROM deployments"); n != rows {
		t.Fatalf("%d deployment rows after refusals, want %d", n, rows)
	}
	if q := s.admin("quota", "show", "--org", "acme"); q != quota {
		t.Fatalf("quota changed by refused deploys: %q, was %q", q, quota)
	}
	if n := countRows(t, s, "SELECT count(*) FROM river_job"); n != rows {
		t.Fatalf("%d jobs for %d deployments", n, rows)
	}
	// Already published sites keep being served from the node's cache.
	if r := s.page(id, "/big.html"); r.status != 200 || string(r.body) != big {
		t.Fatalf("cached file with the store down: %d", r.status)
	}

	// Back up: accepted again, and what it stored is there.
	gw.Restart()
	if n := s3BlobCount(t, gw); n != blobs {
		t.Fatalf("%d blobs after the outage, want %d", n, blobs)
	}
	again := s.deployWait(tok, site("acme", "site", map[string]string{"index.html": "after", "big.html": big + "v3"}), "completed")
	if r := s.page(again, "/big.html"); r.status != 200 || string(r.body) != big+"v3" {
		t.Fatalf("after the outage: %d", r.status)
	}
	if strings.Contains(s.logs.String(), gw.SecretKey) {
		t.Fatal("the S3 secret key appears in the server's log")
	}
	if !regexp.MustCompile(`"store":"s3://` + gw.Bucket + `/` + s3Prefix + `/"`).MatchString(s.logs.String()) {
		t.Errorf("the server does not log which artifact store it uses")
	}
}

func TestS3GCRemovesOldUnreferencedAndKeepsReferenced(t *testing.T) {
	gw := s3test.Start(t)
	env := gw.Env(s3Prefix)
	s := startServer(t, append(append([]string{"DEPLOYMENT_RETENTION=1", "GC_INTERVAL=0"}, env...), noLimit...)...)
	tok := s.setup("acme", "site")
	poor := s.setup("poor", "poor-site")
	s.admin("quota", "set", "--org", "poor", "--limit", "0")

	pad := strings.Repeat(".", 9<<10) // over the inline limit: a blob
	v1, v2 := "<h1>v1</h1>"+pad, "<h1>v2</h1>"+pad
	id1 := s.deployWait(tok, site("acme", "site", map[string]string{"index.html": v1}), "completed")
	s.deployWait(tok, site("acme", "site", map[string]string{"index.html": v2}), "completed")
	// Stored, then refused: referenced by nothing; one before the grace
	// period and one within it.
	const grace = 5 * time.Second
	orphanOld, orphanYoung := "orphan: old"+pad, "orphan: young"+pad
	wantCode(t, s.deploy(poor, site("poor", "poor-site", map[string]string{"a.txt": orphanOld})), 429, "QUOTA_EXCEEDED")
	time.Sleep(grace + 500*time.Millisecond)
	wantCode(t, s.deploy(poor, site("poor", "poor-site", map[string]string{"a.txt": orphanYoung})), 429, "QUOTA_EXCEEDED")
	for _, c := range []string{v1, v2, orphanOld, orphanYoung} {
		if !s3Has(t, gw, c) {
			t.Fatalf("%.12q not stored in S3", c)
		}
	}

	// S3 object times cannot be set back, so the grace period is short
	// instead (it may not be shorter than a deployment attempt).
	gcEnv := append([]string{"MAX_DEPLOYMENT_TIMEOUT=" + strconv.Itoa(int(grace.Milliseconds()))}, env...)
	out := s.adminWith(gcEnv, "gc", "--retention", "1", "--gc-grace", grace.String())
	t.Logf("gc:\n%s", out)
	if !strings.Contains(out, "pruned 1 deployments") || strings.Contains(out, "removed 0 blobs") {
		t.Fatalf("gc:\n%s", out)
	}
	for name, c := range map[string]string{"kept deployment's file": v2, "young orphan": orphanYoung} {
		if !s3Has(t, gw, c) {
			t.Errorf("gc removed the %s", name)
		}
	}
	for name, c := range map[string]string{"pruned deployment's file": v1, "old orphan": orphanOld} {
		if s3Has(t, gw, c) {
			t.Errorf("gc kept the %s", name)
		}
	}
	wantCode(t, s.do("GET", "/deploy-status?id="+id1, nil), 404, "DEPLOYMENT_NOT_FOUND")
	// The kept deployment's manifest survived: a node with a cold cache
	// (this one, restarted without its cache) still serves it.
	if err := s.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(s.dataDir, "blob-cache")); err != nil {
		t.Fatal(err)
	}
	s.start()
	if r := s.page("site", "/"); r.status != 200 || string(r.body) != v2 {
		t.Fatalf("kept deployment after gc, cold cache: %d %.40q", r.status, r.body)
	}
}
