package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/libra-deploy/libra-deploy/internal/pgtest"
	"github.com/libra-deploy/libra-deploy/internal/s3test"
)

// envBuild is a project whose install (preinstall) and build print the
// variables and whose build writes the plain value and a hash of each
// secret into the site: the test sees what the build saw without the build
// publishing a secret.
func envBuild() []map[string]any {
	return files(
		"package.json", `{"name":"envsite","private":true,"scripts":{
			"preinstall":"node -e \"console.log('install sees '+process.env.API_SECRET)\"",
			"build":"node build.js"}}`,
		"build.js", `const fs=require("fs"),c=require("crypto");
const h=v=>c.createHash("sha256").update(v||"").digest("hex");
console.log("greeting="+process.env.PUBLIC_GREETING);
console.log("leak="+process.env.API_SECRET);
console.log(process.env.MULTI_LINE);
console.log("platform="+(process.env.LIBRA_SECRET_KEY||"none"));
fs.mkdirSync("dist",{recursive:true});
fs.writeFileSync("dist/index.html","greeting: "+process.env.PUBLIC_GREETING+"\nsecret: "+h(process.env.API_SECRET)+"\nmulti: "+h(process.env.MULTI_LINE)+"\n");`,
	)
}

func randomSecret(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// envClient sends the env routes with one org's token and keeps every
// response body, so the test can check that no secret was ever in one.
type envClient struct {
	s      *server
	tok    string
	bodies *[][]byte
}

func (c envClient) do(method, path string, body any) response {
	c.s.t.Helper()
	r := c.s.do(method, path, body, "Authorization", "Bearer "+c.tok)
	*c.bodies = append(*c.bodies, r.body)
	return r
}

func (c envClient) put(project, key, value string, secret bool) response {
	c.s.t.Helper()
	return c.do("PUT", "/projects/"+project+"/env/"+key, map[string]any{"value": value, "secret": secret})
}

// TestBuildEnvAndSecrets: a plain variable and secrets set on a project
// reach its install and build; no secret shows in any response, log line,
// the stored full log or the server's own log, nor in clear in the SQLite
// files; a changed value applies to the next deployment.
func TestBuildEnvAndSecrets(t *testing.T) {
	s := startServer(t)
	var bodies [][]byte
	c := envClient{s: s, tok: s.setup("acme", "envsite"), bodies: &bodies}
	secret1, secret2 := randomSecret(t, "first-"), randomSecret(t, "second-")
	multi := randomSecret(t, "line-one-") + "\n" + randomSecret(t, "line-two-")
	if r := c.put("envsite", "PUBLIC_GREETING", "hello-plain-value", false); r.status != 200 || r.str("value") != "hello-plain-value" {
		t.Fatalf("PUT plain: %d %s", r.status, r.body)
	}
	for key, v := range map[string]string{"API_SECRET": secret1, "MULTI_LINE": multi} {
		if r := c.put("envsite", key, v, true); r.status != 200 || r.json["secret"] != true || r.json["value"] != nil {
			t.Fatalf("PUT secret %s: %d %s", key, r.status, r.body)
		}
	}
	checkEnvList(t, c)
	checkKeyFile(t, s)

	first := deployFiles(s, c.tok, "acme", "envsite", envBuild()).str("deploymentId")
	st := s.waitFinal(first, 120*time.Second)
	bodies = append(bodies, st.body)
	if st.str("status") != "completed" {
		t.Fatalf("build: %s", st.body)
	}
	checkSite(t, s, first, "hello-plain-value", secret1, multi)
	checkBuildLogs(t, c, first, st)

	if r := c.put("envsite", "API_SECRET", secret2, true); r.status != 200 {
		t.Fatalf("PUT changed secret: %d %s", r.status, r.body)
	}
	second := deployFiles(s, c.tok, "acme", "envsite", envBuild()).str("deploymentId")
	if st := s.waitFinal(second, 120*time.Second); st.str("status") != "completed" {
		t.Fatalf("second build: %s", st.body)
	}
	checkSite(t, s, second, "hello-plain-value", secret2, multi)
	checkSite(t, s, first, "hello-plain-value", secret1, multi) // an immutable URL keeps what it built with

	secrets := append([]string{secret1, secret2}, strings.Split(multi, "\n")...)
	for i, b := range bodies {
		for _, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("response %d holds a secret: %s", i, b)
			}
		}
	}
	for _, sec := range secrets {
		if strings.Contains(s.logs.String(), sec) {
			t.Errorf("the server's log holds a secret")
		}
	}
	checkDatabaseFiles(t, s, secrets)
}

// checkEnvList: plain values listed, secrets without their value.
func checkEnvList(t *testing.T, c envClient) {
	t.Helper()
	r := c.do("GET", "/projects/envsite/env", nil)
	vars, _ := r.json["variables"].([]any)
	if r.status != 200 || len(vars) != 3 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET env: %d %s", r.status, r.body)
	}
	want := []struct {
		key    string
		secret bool
		value  any
	}{{"API_SECRET", true, nil}, {"MULTI_LINE", true, nil}, {"PUBLIC_GREETING", false, "hello-plain-value"}}
	for i, w := range want {
		v, _ := vars[i].(map[string]any)
		if v["key"] != w.key || v["secret"] != w.secret || v["value"] != w.value || v["updatedAt"] == nil {
			t.Errorf("variable %d: %v, want %+v", i, v, w)
		}
		if _, has := v["value"]; w.secret && has {
			t.Errorf("a secret's listing has a value field: %v", v)
		}
	}
}

// checkKeyFile: without LIBRA_SECRET_KEY the key is a 0600 file in the
// data directory.
func checkKeyFile(t *testing.T, s *server) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(s.dataDir, "secret.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key file: %v, %v; want mode 0600", fi, err)
	}
}

// checkSite: the published page shows the plain value and the hashes of
// the secrets the build saw.
func checkSite(t *testing.T, s *server, id, plain, secret, multi string) {
	t.Helper()
	r := s.do("GET", "/", nil, "Host", s.siteHost(id))
	want := "greeting: " + plain + "\nsecret: " + sha256Hex(secret) + "\nmulti: " + sha256Hex(multi) + "\n"
	if r.status != 200 || string(r.body) != want {
		t.Fatalf("site of %s: %d %q, want %q", id, r.status, r.body, want)
	}
}

// checkBuildLogs: the plain value is printed, each secret (and each line
// of the multi-line one) is redacted in the status's lines and in the
// stored full log, and the platform's key never reached the build.
func checkBuildLogs(t *testing.T, c envClient, id string, st response) {
	t.Helper()
	full := c.do("GET", "/deploy-log?id="+id, nil)
	if full.status != 200 {
		t.Fatalf("deploy-log: %d %s", full.status, full.body)
	}
	// The event stream replays the finished deployment in full and ends.
	events := c.do("GET", "/deployments/"+id+"/events", nil)
	if events.status != 200 {
		t.Fatalf("events: %d %s", events.status, events.body)
	}
	for name, text := range map[string]string{"deploy-status": string(st.body), "deploy-log": string(full.body),
		"events": string(events.body)} {
		for _, want := range []string{"greeting=hello-plain-value", "leak=[REDACTED]", "install sees [REDACTED]", "platform=none"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q:\n%s", name, want, tail(text, 3000))
			}
		}
		if strings.Count(text, "[REDACTED]") < 4 {
			t.Errorf("%s: the multi-line secret's lines are not redacted:\n%s", name, tail(text, 3000))
		}
	}
	if !strings.Contains(string(st.body), "API_SECRET (secret)") {
		t.Errorf("the log does not name the variables the build got: %s", st.body)
	}
}

// checkDatabaseFiles: the SQLite files (WAL included) hold the plain value,
// so the search works, and no secret in clear.
func checkDatabaseFiles(t *testing.T, s *server, secrets []string) {
	t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(filepath.Join(s.dataDir, "libra.db"+suffix))
		if err != nil && suffix == "" {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if !bytes.Contains(all, []byte("hello-plain-value")) {
		t.Fatal("the database files do not hold the plain value: the search below would prove nothing")
	}
	for _, sec := range secrets {
		if bytes.Contains(all, []byte(sec)) {
			t.Errorf("the database files hold a secret in clear")
		}
	}
}

// TestEnvRefusesBadInput: bad names and values are 400 in the unified
// format, another org's project is 404 on every route, and none of it
// changes anything.
func TestEnvRefusesBadInput(t *testing.T) {
	s := startServer(t)
	var bodies [][]byte
	c := envClient{s: s, tok: s.setup("acme", "envsite"), bodies: &bodies}
	other := envClient{s: s, tok: s.setup("rival", "rivalsite"), bodies: &bodies}
	if r := c.put("envsite", "KEEP_ME", "kept-value", false); r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	tests := []struct {
		name, key string
		body      any
	}{
		{"starts with a digit", "1ABC", map[string]any{"value": "v"}},
		{"dash", "A-B", map[string]any{"value": "v"}},
		{"PATH", "PATH", map[string]any{"value": "/evil"}},
		{"path in lower case", "path", map[string]any{"value": "/evil"}},
		{"HOME", "HOME", map[string]any{"value": "/tmp"}},
		{"NODE_OPTIONS", "NODE_OPTIONS", map[string]any{"value": "--require /x"}},
		{"proxy", "https_proxy", map[string]any{"value": "http://evil"}},
		{"LIBRA_ prefix", "LIBRA_SECRET_KEY", map[string]any{"value": "x"}},
		{"LD_ prefix", "LD_PRELOAD", map[string]any{"value": "/x.so"}},
		{"too long a name", strings.Repeat("A", 257), map[string]any{"value": "v"}},
		{"short secret", "TOKEN", map[string]any{"value": "short", "secret": true}},
		{"value too big", "BIG", map[string]any{"value": strings.Repeat("x", 16<<10+1)}},
		{"NUL in value", "NUL", map[string]any{"value": "a\x00b"}},
		{"no value", "EMPTY_BODY", map[string]any{"secret": false}},
		{"value not a string", "NUMBER", map[string]any{"value": 12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do("PUT", "/projects/envsite/env/"+tt.key, tt.body)
			wantUnifiedError(t, "PUT "+tt.key, r, 400, "VALIDATION_ERROR")
		})
	}
	for _, r := range []response{
		other.do("GET", "/projects/envsite/env", nil),
		other.put("envsite", "KEEP_ME", "overwritten", false),
		other.do("DELETE", "/projects/envsite/env/KEEP_ME", nil),
		c.do("GET", "/projects/nosuch/env", nil),
	} {
		wantUnifiedError(t, "another org's or no project", r, 404, "PROJECT_NOT_FOUND")
	}
	wantUnifiedError(t, "no token", s.do("GET", "/projects/envsite/env", nil), 401, "UNAUTHORIZED")
	r := c.do("GET", "/projects/envsite/env", nil)
	if vars, _ := r.json["variables"].([]any); len(vars) != 1 || !strings.Contains(string(r.body), `"kept-value"`) {
		t.Fatalf("after refused requests: %s", r.body)
	}
	if r := c.do("DELETE", "/projects/envsite/env/KEEP_ME", nil); r.status != 200 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	wantUnifiedError(t, "DELETE again", c.do("DELETE", "/projects/envsite/env/KEEP_ME", nil), 404, "NOT_FOUND")
}

// TestSecretKeyAtStartUp: a LIBRA_SECRET_KEY that does not decode to 32
// bytes, or none in cluster mode, stops serve at start with a message
// naming it.
func TestSecretKeyAtStartUp(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"not base64", []string{"LIBRA_SECRET_KEY=not*base64"}, "LIBRA_SECRET_KEY: not base64"},
		{"16 bytes", []string{"LIBRA_SECRET_KEY=MDEyMzQ1Njc4OWFiY2RlZg=="}, "LIBRA_SECRET_KEY: decodes to 16 bytes, want 32"},
		{"cluster without a key", []string{"POSTGRES_URL=postgres://127.0.0.1:1/none", "LIBRA_SECRET_KEY="}, "LIBRA_SECRET_KEY is required with POSTGRES_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.env...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", s.dataDir)
			cmd.Env = append(append(os.Environ(), s.base...), s.env...)
			out, err := cmd.CombinedOutput()
			if err == nil || ctx.Err() != nil || !strings.Contains(string(out), tt.want) {
				t.Fatalf("serve: %v (ctx %v), output:\n%s\nwant an error with %q", err, ctx.Err(), out, tt.want)
			}
		})
	}
}

// TestBuildSecretsAcrossNodesPostgres: on PostgreSQL and S3, a secret set through
// node 1 is listed by node 2 and seen by a build that node 2 accepted
// (whichever node runs it: both share LIBRA_SECRET_KEY); the database holds
// only its sealed form.
func TestBuildSecretsAcrossNodesPostgres(t *testing.T) {
	dbURL := pgtest.Database(t, pgTemplate)
	gw := s3test.Start(t) // one artifact store: either node serves what the other built
	n1 := startServer(t, append(gw.Env(s3Prefix), "POSTGRES_URL="+dbURL)...)
	n2 := startServer(t, append(gw.Env(s3Prefix), "POSTGRES_URL="+dbURL)...)
	tok := pgAdmin(t, n1, dbURL, "token", "create", "--org", "acme", "--user", "user-acme")
	pgAdmin(t, n1, dbURL, "project", "create", "--org", "acme", "--id", "envsite")
	var bodies [][]byte
	c1, c2 := envClient{s: n1, tok: tok, bodies: &bodies}, envClient{s: n2, tok: tok, bodies: &bodies}
	secret, multi := randomSecret(t, "pg-secret-"), randomSecret(t, "pg-multi-")
	for _, v := range []struct {
		key, value string
		secret     bool
	}{{"PUBLIC_GREETING", "hello-from-pg", false}, {"API_SECRET", secret, true}, {"MULTI_LINE", multi, true}} {
		if r := c1.put("envsite", v.key, v.value, v.secret); r.status != 200 {
			t.Fatalf("PUT %s on node 1: %d %s", v.key, r.status, r.body)
		}
	}
	if r := c2.do("GET", "/projects/envsite/env", nil); r.status != 200 || strings.Count(string(r.body), `"key"`) != 3 {
		t.Fatalf("GET env on node 2: %d %s", r.status, r.body)
	}
	id := deployFiles(n2, tok, "acme", "envsite", envBuild()).str("deploymentId")
	st := n2.waitFinal(id, 120*time.Second)
	bodies = append(bodies, st.body)
	if st.str("status") != "completed" {
		t.Fatalf("build: %s", st.body)
	}
	checkSite(t, n1, id, "hello-from-pg", secret, multi)
	// The nodes run with LIBRA_SECRET_KEY set: the build must not see it.
	if !strings.Contains(string(st.body), "platform=none") || strings.Contains(string(st.body), testSecretKey) {
		t.Errorf("the platform's key reached the build: %s", tail(string(st.body), 2000))
	}
	for i, b := range bodies {
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte(multi)) {
			t.Errorf("response %d holds a secret: %s", i, b)
		}
	}
	checkSealedInPostgres(t, dbURL, secret)
}

// checkSealedInPostgres: the secret's row holds the sealed form only.
func checkSealedInPostgres(t *testing.T, dbURL, secret string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var value string
	err = conn.QueryRow(context.Background(), `SELECT value FROM project_env WHERE project_id = 'envsite' AND key = 'API_SECRET'`).Scan(&value)
	if err != nil || !strings.HasPrefix(value, "v1:") || strings.Contains(value, secret) {
		t.Fatalf("stored secret: %q, %v; want only its sealed form", value, err)
	}
}
