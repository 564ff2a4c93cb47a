package main_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/fakedaytona"
	"github.com/libra-deploy/libra-deploy/internal/fakee2b"
)

// The platform's keys: they must reach the provider's fake in headers and
// nowhere else (not the sandbox's environment, a log, or the site).
const (
	daytonaTestKey = "dtn_platform_secret_7f3a9c"
	e2bTestKey     = "e2b_platform_secret_4b1d8e"
)

// remoteFake is one provider's fake as these tests drive it.
type remoteFake struct {
	name, key, keyVar string
	// env points the server at the fake with the given key.
	env func(key string) []string
	// fault and delay change the fake's behaviour; creates counts the
	// sandbox creations asked for (answered or not).
	fault   func(code int, path string)
	delay   func(time.Duration)
	creates func() int64
	live    func() int
	deleted func() int
}

func startDaytonaFake(t *testing.T) remoteFake {
	f := fakedaytona.Start(t, daytonaTestKey)
	var creates atomic.Int64
	var fault atomic.Value // func(*http.Request) int
	f.Fault = func(r *http.Request) int {
		if r.Method == "POST" && r.URL.Path == "/api/sandbox" {
			creates.Add(1)
		}
		if fn, ok := fault.Load().(func(*http.Request) int); ok {
			return fn(r)
		}
		return 0
	}
	return remoteFake{
		name: "daytona", key: daytonaTestKey, keyVar: "DAYTONA_API_KEY",
		env: func(key string) []string {
			return []string{"SANDBOX_BUILDER_DEFAULT_PROVIDER=daytona", "DAYTONA_API_URL=" + f.APIURL,
				"DAYTONA_API_KEY=" + key, "DAYTONA_POLL_INTERVAL_MS=50"}
		},
		fault:   func(code int, path string) { fault.Store(faultOn(code, path)) },
		delay:   func(d time.Duration) { f.Delay = d },
		creates: creates.Load,
		live:    f.Live,
		deleted: func() int { _, d := f.Counts(); return d },
	}
}

func startE2BFake(t *testing.T) remoteFake {
	f := fakee2b.Start(t, e2bTestKey)
	var creates atomic.Int64
	var fault atomic.Value
	f.Fault = func(r *http.Request) int {
		if r.Method == "POST" && r.URL.Path == "/sandboxes" {
			creates.Add(1)
		}
		if fn, ok := fault.Load().(func(*http.Request) int); ok {
			return fn(r)
		}
		return 0
	}
	return remoteFake{
		name: "e2b", key: e2bTestKey, keyVar: "E2B_API_KEY",
		env: func(key string) []string {
			return []string{"SANDBOX_BUILDER_DEFAULT_PROVIDER=e2b", "E2B_API_URL=" + f.APIURL,
				"E2B_SANDBOX_URL=" + f.SandboxURL, "E2B_API_KEY=" + key}
		},
		fault:   func(code int, path string) { fault.Store(faultOn(code, path)) },
		delay:   func(d time.Duration) { f.Delay = d },
		creates: creates.Load,
		live:    func() int { return f.Stats().Live },
		deleted: func() int { return f.Stats().Killed },
	}
}

func faultOn(code int, path string) func(*http.Request) int {
	return func(r *http.Request) int {
		if r.Method == "POST" && r.URL.Path == path {
			return code
		}
		return 0
	}
}

var remoteFakes = []struct {
	name  string
	start func(*testing.T) remoteFake
	// createPath is where a sandbox is created.
	createPath string
}{
	{"daytona", startDaytonaFake, "/api/sandbox"},
	{"e2b", startE2BFake, "/sandboxes"},
}

// envProject's build prints its whole environment, then writes the site.
func envProject(marker string) []map[string]any {
	return files(
		"package.json", `{"name":"remote","private":true,"scripts":{"build":"node build.js"}}`,
		"build.js", `const fs=require("fs");for(const [k,v] of Object.entries(process.env))console.log("env "+k+"="+v);`+
			`fs.mkdirSync("dist",{recursive:true});fs.writeFileSync("dist/index.html","<p>`+marker+` "+(6*7)+"</p>");`+
			`fs.writeFileSync("dist/env.txt",JSON.stringify(process.env));console.log("built remotely!")`,
	)
}

func TestRemoteSandboxBuildsAndServes(t *testing.T) {
	for _, rf := range remoteFakes {
		t.Run(rf.name, func(t *testing.T) {
			fake := rf.start(t)
			s := startServer(t, fake.env(fake.key)...)
			tok := s.setup("acme", "remote")
			r := deployFiles(s, tok, "acme", "remote", envProject("built in "+rf.name))
			id := r.str("deploymentId")
			st := s.waitFinal(id, 120*time.Second)
			if st.str("status") != "completed" {
				t.Fatalf("deployment: %s\nserver log:\n%s", st.body, tail(s.logs.String(), 3000))
			}
			body := string(st.body)
			if !strings.Contains(body, "built remotely!") || !strings.Contains(body, "sandbox ready: "+rf.name) || !strings.Contains(body, "env PATH=") {
				t.Fatalf("the remote build's output is not in the deployment's log: %s", body)
			}
			site := s.do("GET", "/", nil, "Host", "remote.localhost:"+s.port)
			if site.status != 200 || !strings.Contains(string(site.body), "built in "+rf.name+" 42") {
				t.Fatalf("site: %d %s", site.status, site.body)
			}
			envFile := s.do("GET", "/env.txt", nil, "Host", "remote.localhost:"+s.port)
			full := s.do("GET", "/deploy-log?id="+id, nil, "Authorization", "Bearer "+tok)
			if envFile.status != 200 || full.status != 200 || !strings.Contains(string(full.body), "built remotely!") {
				t.Fatalf("env.txt %d, deploy-log %d %s", envFile.status, full.status, full.body)
			}
			for what, text := range map[string]string{
				"the deployment's log": body, "the full build log": string(full.body),
				"the published site (the sandbox's env)": string(envFile.body), "the server's log": s.logs.String(),
			} {
				if strings.Contains(text, daytonaTestKey) || strings.Contains(text, e2bTestKey) {
					t.Errorf("a platform key is in %s", what)
				}
			}
			if fake.live() != 0 || fake.deleted() != 1 {
				t.Fatalf("after success: %d sandboxes live, %d deleted; want 0 and 1", fake.live(), fake.deleted())
			}
		})
	}
}

// A failing build is the user's: failed at once, not retried, sandbox
// deleted. A build past the deployment's deadline is stopped and its
// sandbox deleted too (the path a cancellation takes: the job's context
// ends); that one runs on a server of its own, so that the deadline cannot
// cut the first build short on a loaded machine.
func TestRemoteSandboxDeletedAfterFailure(t *testing.T) {
	for _, rf := range remoteFakes {
		t.Run(rf.name, func(t *testing.T) {
			fake := rf.start(t)
			s := startServer(t, fake.env(fake.key)...)
			tok := s.setup("acme", "broken")
			r := deployFiles(s, tok, "acme", "broken", files(
				"package.json", `{"name":"broken","private":true,"scripts":{"build":"node -e \"console.log('compiling');process.exit(2)\""}}`))
			st := s.waitFinal(r.str("deploymentId"), 90*time.Second)
			if st.str("status") != "failed" || !strings.Contains(st.str("error"), "exit code 2") || strings.Contains(st.str("error"), "attempts") {
				t.Fatalf("failing build: %s", st.body)
			}
			if fake.creates() != 1 || fake.live() != 0 {
				t.Fatalf("failing build: %d creates, %d live; want 1 and 0", fake.creates(), fake.live())
			}
			s2 := startServer(t, append(fake.env(fake.key), "MAX_DEPLOYMENT_TIMEOUT=8000")...)
			tok = s2.setup("acme", "endless")
			r = deployFiles(s2, tok, "acme", "endless", files(
				"package.json", `{"name":"endless","private":true,"scripts":{"build":"node -e \"console.log('forever');setInterval(()=>{},1000)\""}}`))
			if st := s2.waitFinal(r.str("deploymentId"), 90*time.Second); st.str("status") != "failed" {
				t.Fatalf("endless build: %s", st.body)
			}
			if fake.live() != 0 || fake.creates() < 2 {
				t.Fatalf("after the deadline: %d sandboxes live, %d creates", fake.live(), fake.creates())
			}
		})
	}
}

// A provider outage (5xx) or a provider that does not answer is the
// platform's fault: retried, then dead-lettered; a bad key fails at once
// with a message naming the provider and the variable.
func TestRemoteSandboxOutagesAndBadKeys(t *testing.T) {
	for _, rf := range remoteFakes {
		t.Run(rf.name+"/outage", func(t *testing.T) {
			fake := rf.start(t)
			fake.fault(503, rf.createPath)
			s := startServer(t, fake.env(fake.key)...)
			tok := s.setup("acme", "down")
			id := deployFiles(s, tok, "acme", "down", envProject("x")).str("deploymentId")
			st := s.waitFinal(id, 60*time.Second)
			if st.str("status") != "failed" || !strings.Contains(st.str("error"), "after 3 attempts") {
				t.Fatalf("outage: %s", st.body)
			}
			if n := fake.creates(); n != 3 {
				t.Fatalf("%d creates, want 3 (one per attempt)", n)
			}
			waitDeadLettered(t, s, id)
		})
		t.Run(rf.name+"/timeout", func(t *testing.T) {
			fake := rf.start(t)
			fake.delay(2 * time.Second)
			s := startServer(t, append(fake.env(fake.key), "SANDBOX_PROVIDER_REQUEST_TIMEOUT_MS=300")...)
			tok := s.setup("acme", "slow")
			id := deployFiles(s, tok, "acme", "slow", envProject("x")).str("deploymentId")
			st := s.waitFinal(id, 60*time.Second)
			if st.str("status") != "failed" || !strings.Contains(st.str("error"), "after 3 attempts") {
				t.Fatalf("provider timeout: %s", st.body)
			}
		})
		t.Run(rf.name+"/bad key", func(t *testing.T) {
			fake := rf.start(t)
			s := startServer(t, fake.env("not-the-key")...)
			tok := s.setup("acme", "badkey")
			st := s.waitFinal(deployFiles(s, tok, "acme", "badkey", envProject("x")).str("deploymentId"), 60*time.Second)
			msg := st.str("error")
			if st.str("status") != "failed" || !strings.Contains(msg, rf.name) || !strings.Contains(msg, fake.keyVar) || strings.Contains(msg, "attempts") {
				t.Fatalf("bad key: %s", st.body)
			}
			if fake.creates() != 1 {
				t.Fatalf("%d creates with a bad key, want 1 (not retried)", fake.creates())
			}
		})
	}
}

func waitDeadLettered(t *testing.T, s *server, id string) {
	t.Helper()
	var list string
	for i := 0; i < 100 && !strings.Contains(list, id); i++ {
		time.Sleep(50 * time.Millisecond) // the job is discarded just after the deployment is saved
		list = s.admin("dlq", "list")
	}
	if !strings.Contains(list, id) {
		t.Fatalf("not dead-lettered: %q", list)
	}
}

// A real Vite + React build, installed from the npm registry inside each
// fake (which runs the commands for real), then served.
func TestRemoteSandboxBuildsViteApp(t *testing.T) {
	if testing.Short() {
		t.Skip("installs from the npm registry")
	}
	for _, rf := range remoteFakes {
		t.Run(rf.name, func(t *testing.T) {
			fake := rf.start(t)
			s := startServer(t, fake.env(fake.key)...)
			tok := s.setup("acme", "vite")
			start := time.Now()
			st := s.waitFinal(deployFiles(s, tok, "acme", "vite", viteReactApp("Vite in "+rf.name)).str("deploymentId"), 5*time.Minute)
			if st.str("status") != "completed" {
				t.Fatalf("build: %s", tail(string(st.body), 4000))
			}
			t.Logf("Vite app built in the %s fake and published in %s", rf.name, time.Since(start).Round(time.Millisecond))
			host := "vite.localhost:" + s.port
			page := s.do("GET", "/", nil, "Host", host)
			ref := assetRef.FindString(string(page.body))
			if page.status != 200 || !strings.Contains(string(page.body), "Vite in "+rf.name) || ref == "" {
				t.Fatalf("index.html: %d %s", page.status, page.body)
			}
			if js := s.do("GET", ref, nil, "Host", host); js.status != 200 || !strings.Contains(string(js.body), "count is") {
				t.Fatalf("%s: %d", ref, js.status)
			}
			if fake.live() != 0 {
				t.Fatalf("%d sandboxes live after the build", fake.live())
			}
		})
	}
}

// A service shutting down mid-build deletes the remote sandbox before it
// exits: nothing is left running (and billed) at the provider.
func TestRemoteSandboxDeletedOnShutdown(t *testing.T) {
	for _, rf := range remoteFakes {
		t.Run(rf.name, func(t *testing.T) {
			fake := rf.start(t)
			s := startServer(t, append(fake.env(fake.key), "SHUTDOWN_GRACE_MS=500")...)
			tok := s.setup("acme", "endless")
			id := deployFiles(s, tok, "acme", "endless", files(
				"package.json", `{"name":"endless","private":true,"scripts":{"build":"node -e \"console.log('forever');setInterval(()=>{},1000)\""}}`)).str("deploymentId")
			s.waitFor(id, 60*time.Second, func(r response) bool { return strings.Contains(string(r.body), "forever") })
			if fake.live() != 1 {
				t.Fatalf("%d sandboxes live during the build, want 1", fake.live())
			}
			if err := s.stop(60 * time.Second); err != nil {
				t.Fatalf("serve exit: %v", err)
			}
			if fake.live() != 0 || fake.deleted() != 1 {
				t.Fatalf("after shutdown: %d live, %d deleted; want 0 and 1\n%s", fake.live(), fake.deleted(), tail(s.logs.String(), 2000))
			}
		})
	}
}

// Without a key the service still starts and serves static sites; /health
// says why builds cannot run, and a project that needs one fails at once
// with that reason, never calling the provider.
func TestRemoteSandboxMissingKey(t *testing.T) {
	for _, rf := range remoteFakes {
		t.Run(rf.name, func(t *testing.T) {
			fake := rf.start(t)
			s := startServer(t, fake.env("")...)
			health := s.do("GET", "/health", nil)
			checks, _ := health.json["checks"].(map[string]any)
			if checks["sandbox"] == "healthy" || checks["database"] != "healthy" {
				t.Fatalf("health: %s", health.body)
			}
			tok := s.setup("acme", "nokey")
			if st := s.waitFinal(s.deploy(tok, staticSite("acme", "nokey", 2)).str("deploymentId"), 30*time.Second); st.str("status") != "completed" {
				t.Fatalf("static site without a sandbox: %s", st.body)
			}
			st := s.waitFinal(deployFiles(s, tok, "acme", "nokey", envProject("x")).str("deploymentId"), 30*time.Second)
			if st.str("status") != "failed" || !strings.Contains(st.str("error"), fake.keyVar+" is not set") {
				t.Fatalf("build without a key: %s", st.body)
			}
			if fake.creates() != 0 {
				t.Fatalf("%d creates without a key", fake.creates())
			}
		})
	}
}
