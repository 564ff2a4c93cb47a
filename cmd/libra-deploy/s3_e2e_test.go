package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
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

// healthCheck returns one check's result from GET /health.
func healthCheck(s *server, name string) string {
	checks, _ := s.do("GET", "/health", nil).json["checks"].(map[string]any)
	v, _ := checks[name].(string)
	return v
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
	if full := s.do("GET", "/deploy-log?id="+buildID, nil, "Authorization", "Bearer "+tok); full.status != 200 || !strings.Contains(string(full.body), "built!") {
		t.Fatalf("full build log from S3: %d %.200s", full.status, full.body)
	}

	// The object store goes away: every deploy is refused, nothing written.
	rows := countRows(t, s, "SELECT count(*) FROM deployments")
	quota := s.admin("quota", "show", "--org", "acme")
	blobs := s3BlobCount(t, gw)
	if c := healthCheck(s, "artifacts"); c != "healthy" {
		t.Fatalf("health of the artifact store while up: %q", c)
	}
	gw.Stop()
	if c := healthCheck(s, "artifacts"); c != "unhealthy" {
		t.Fatalf("health of the artifact store while down: %q", c)
	}
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

// A node with a cold cache under concurrent requests for large files: every
// response is whole and right, the cache stays within BLOB_CACHE_MB, and
// memory and descriptors stay bounded. A blob damaged in the bucket is
// never served.
func TestS3ColdNodeConcurrentMissesAndDamagedBlob(t *testing.T) {
	gw := s3test.Start(t)
	const cacheMB = 24
	s := startServer(t, append(append(gw.Env(s3Prefix), "BLOB_CACHE_MB="+strconv.Itoa(cacheMB)), noLimit...)...)
	tok := s.setup("acme", "big")
	const files, size = 3, 9 << 20 // over the site host's in-memory limit
	list := []map[string]any{{"path": "index.html", "content": "<h1>big</h1>"}}
	sums := map[string]string{}
	for i := range files {
		f := benchFile(fmt.Sprintf("l-%d.bin", i), size)
		raw, _ := base64.StdEncoding.DecodeString(f["content"].(string))
		sums[f["path"].(string)] = sha256Hex(string(raw))
		list = append(list, f)
	}
	s.deployWait(tok, map[string]any{"projectId": "big", "orgId": "acme", "userId": "user-acme", "initFiles": list}, "completed")
	coldRestart(t, s)

	const readers = 10
	for path, sum := range sums {
		var wg sync.WaitGroup
		errs := make(chan error, readers)
		for range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- getAndHash(s, "big.localhost:"+s.port, path, sum)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	pid := s.cmd.Process.Pid
	rss, fds := rssMB(t, pid), countFds(t, pid)
	cached := dirSize(t, filepath.Join(s.dataDir, "blob-cache"))
	t.Logf("%d files of %d MiB, %d concurrent cold readers each: blob cache %.1f MiB (bound %d MiB), RSS %d MB, %d fds",
		files, size>>20, readers, float64(cached)/(1<<20), cacheMB, rss, fds)
	if cached > cacheMB<<20 {
		t.Errorf("blob cache holds %d bytes, over BLOB_CACHE_MB=%d", cached, cacheMB)
	}
	if rss > 400 || fds > 300 {
		t.Errorf("RSS %d MB, %d fds: want under 400 MB and 300", rss, fds)
	}

	// Damage one object in the bucket (same size), then ask a cold node.
	victim := "l-0.bin"
	obj := filepath.Join(gw.Dir(), gw.Bucket, s3Prefix, "sha256", sums[victim])
	if err := os.WriteFile(obj, bytes.Repeat([]byte{'X'}, size), 0o644); err != nil {
		t.Fatal(err)
	}
	coldRestart(t, s)
	r := s.do("GET", "/"+victim, nil, "Host", "big.localhost:"+s.port)
	if r.status == 200 || bytes.Contains(r.body, []byte("XXXX")) {
		t.Fatalf("damaged blob: %d with %d bytes, want an error and none of it", r.status, len(r.body))
	}
	if exists(filepath.Join(s.dataDir, "blob-cache", sums[victim])) {
		t.Fatal("the damaged blob was cached")
	}
	t.Logf("damaged blob answered %d %q", r.status, r.body)
}

// coldRestart restarts the server without its blob cache.
func coldRestart(t *testing.T, s *server) {
	t.Helper()
	if err := s.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(s.dataDir, "blob-cache")); err != nil {
		t.Fatal(err)
	}
	s.start()
}

func getAndHash(s *server, host, path, sum string) error {
	req, err := http.NewRequest("GET", "http://127.0.0.1:"+s.port+"/"+path, nil)
	if err != nil {
		return err
	}
	req.Host = host
	tr := &http.Transport{DisableKeepAlives: true, DisableCompression: true}
	defer tr.CloseIdleConnections()
	res, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, res.Body); err != nil {
		return err
	}
	if res.StatusCode != 200 || hex.EncodeToString(h.Sum(nil)) != sum {
		return fmt.Errorf("GET /%s: %d, content hashes to %x, want %s", path, res.StatusCode, h.Sum(nil), sum)
	}
	return nil
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, de := range des {
		if info, err := de.Info(); err == nil {
			total += info.Size()
		}
	}
	return total
}

// TestServeRefusesBadArtifactStore: a bad artifact store setting stops
// serve at start, naming the variable.
func TestServeRefusesBadArtifactStore(t *testing.T) {
	cases := []struct {
		env  []string
		want string
	}{
		{[]string{"ARTIFACT_STORE=ftp://bucket/x"}, "ARTIFACT_STORE"},
		{[]string{"ARTIFACT_STORE=s3://Not_A_Bucket"}, "ARTIFACT_STORE"},
		{[]string{"ARTIFACT_STORE=/var/lib/blobs"}, "ARTIFACT_STORE"},
		{[]string{"ARTIFACT_STORE=s3://good-bucket", "BLOB_CACHE_MB=0"}, "BLOB_CACHE_MB"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.env, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir())
			cmd.Env = append(append(os.Environ(), tc.env...), "SANDBOX_ROOT="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil || err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("serve with %v: %v (deadline: %v)\n%.2000s", tc.env, err, ctx.Err(), out)
			}
		})
	}
}

// Wrong S3 credentials: the server starts (the store may come back), but
// every deploy is refused with a 503 and the secret is never logged.
func TestS3WrongCredentialsRefuseDeploys(t *testing.T) {
	gw := s3test.Start(t)
	env := gw.Env(s3Prefix)
	wrong := "wrong-secret-" + gw.SecretKey[:8]
	env = append(env, "AWS_SECRET_ACCESS_KEY="+wrong)
	s := startServer(t, env...)
	tok := s.setup("acme", "site")
	big := strings.Repeat("y", 20<<10)
	for _, body := range []map[string]string{{"index.html": "small"}, {"big.html": big}} {
		wantCode(t, s.deploy(tok, site("acme", "site", body)), 503, "SERVICE_UNAVAILABLE")
	}
	if n := countRows(t, s, "SELECT count(*) FROM deployments"); n != 0 {
		t.Fatalf("%d deployment rows, want 0", n)
	}
	if c := healthCheck(s, "artifacts"); c != "unhealthy" {
		t.Fatal("health reports the artifact store ok with wrong credentials")
	}
	if strings.Contains(s.logs.String(), wrong) {
		t.Fatal("the S3 secret appears in the server's log")
	}
}
