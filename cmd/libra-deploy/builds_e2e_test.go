package main_test

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// files turns path/content pairs into initFiles.
func files(pairs ...string) []map[string]any {
	var out []map[string]any
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, map[string]any{"path": pairs[i], "content": pairs[i+1]})
	}
	return out
}

func deployFiles(s *server, tok, org, project string, f []map[string]any) response {
	s.t.Helper()
	r := s.deploy(tok, map[string]any{"projectId": project, "orgId": org, "userId": "user-" + org, "initFiles": f})
	if r.status != 202 {
		s.t.Fatalf("POST /deploy: %d %s", r.status, r.body)
	}
	return r
}

func TestBuildPlainNodeScript(t *testing.T) {
	s := startServer(t)
	tok := s.setup("acme", "computed")
	r := deployFiles(s, tok, "acme", "computed", files(
		"package.json", `{"name":"computed","private":true,"scripts":{"build":"node build.js"}}`,
		"build.js", `const fs=require("fs");fs.mkdirSync("dist",{recursive:true});`+
			`fs.writeFileSync("dist/index.html","<p>answer "+(6*7)+"</p>");console.log("built!")`,
	))
	st := s.waitFinal(r.str("deploymentId"), 90*time.Second)
	if st.str("status") != "completed" {
		t.Fatalf("build: %s", st.body)
	}
	if !strings.Contains(string(st.body), "built!") {
		t.Errorf("build output not streamed into the logs: %s", st.body)
	}
	site := s.do("GET", "/", nil, "Host", "computed.localhost:"+s.port)
	if site.status != 200 || !strings.Contains(string(site.body), "answer 42") {
		t.Fatalf("site: %d %s", site.status, site.body)
	}
	// The full build log, in the artifact store, with both commands' output.
	full := s.do("GET", "/deploy-log?id="+r.str("deploymentId"), nil, "Authorization", "Bearer "+tok)
	if full.status != 200 || !strings.HasPrefix(full.header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(string(full.body), "$ npm install") || !strings.Contains(string(full.body), "built!") {
		t.Fatalf("deploy-log: %d %q %s", full.status, full.header.Get("Content-Type"), full.body)
	}
	// Only the output directory is published.
	if r := s.do("GET", "/build.js", nil, "Host", "computed.localhost:"+s.port); r.status != 404 && strings.Contains(string(r.body), "writeFileSync") {
		t.Fatalf("source file published: %d", r.status)
	}
}

// viteReactApp is what `npm create vite@latest -- --template react-ts`
// produces, trimmed to what matters, with no lockfile (as AI builders send it).
func viteReactApp(title string) []map[string]any {
	return files(
		"package.json", `{
  "name": "vite-react-ts", "private": true, "version": "0.0.0", "type": "module",
  "scripts": {"dev": "vite", "build": "tsc -b && vite build", "preview": "vite preview"},
  "dependencies": {"react": "^19.1.0", "react-dom": "^19.1.0"},
  "devDependencies": {"@types/react": "^19.1.0", "@types/react-dom": "^19.1.0",
    "@vitejs/plugin-react": "^5.0.0", "typescript": "~5.8.3", "vite": "^7.0.0"}
}`,
		"index.html", `<!doctype html><html lang="en"><head><meta charset="UTF-8" /><title>`+title+`</title></head>
<body><div id="root"></div><script type="module" src="/src/main.tsx"></script></body></html>`,
		"tsconfig.json", `{"files": [], "references": [{"path": "./tsconfig.app.json"}]}`,
		"tsconfig.app.json", `{"compilerOptions": {"target": "ES2022", "lib": ["ES2022", "DOM", "DOM.Iterable"], "module": "ESNext",
  "skipLibCheck": true, "moduleResolution": "bundler", "allowImportingTsExtensions": true, "noEmit": true,
  "jsx": "react-jsx", "strict": true, "tsBuildInfoFile": "./node_modules/.tmp/tsconfig.app.tsbuildinfo"}, "include": ["src"]}`,
		"vite.config.ts", `import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'
export default defineConfig({ plugins: [react()] })`,
		"src/main.tsx", `import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import App from './App.tsx'
createRoot(document.getElementById('root')!).render(<StrictMode><App /></StrictMode>)`,
		"src/App.tsx", `import { useState } from 'react'
export default function App() {
  const [count, setCount] = useState(0)
  return <button onClick={() => setCount((c) => c + 1)}>`+title+` count is {count}</button>
}`,
	)
}

var assetRef = regexp.MustCompile(`/assets/index-[A-Za-z0-9_-]+\.js`)

func TestBuildViteReactApp(t *testing.T) {
	if testing.Short() {
		t.Skip("installs from the npm registry")
	}
	s := startServer(t)
	tok := s.setup("acme", "react-app")
	st := s.waitFinal(deployFiles(s, tok, "acme", "react-app", viteReactApp("Hello Vite")).str("deploymentId"), 5*time.Minute)
	if st.str("status") != "completed" {
		t.Fatalf("build: %s", tail(string(st.body), 4000))
	}
	host := "react-app.localhost:" + s.port
	page := s.do("GET", "/", nil, "Host", host)
	ref := assetRef.FindString(string(page.body))
	if page.status != 200 || !strings.Contains(string(page.body), "Hello Vite") || ref == "" {
		t.Fatalf("index.html: %d %s", page.status, page.body)
	}
	js := s.do("GET", ref, nil, "Host", host)
	if js.status != 200 || !strings.Contains(js.header.Get("Content-Type"), "javascript") ||
		!strings.Contains(string(js.body), "count is") || !strings.Contains(js.header.Get("Cache-Control"), "immutable") {
		t.Fatalf("%s: %d %q %q", ref, js.status, js.header.Get("Content-Type"), js.header.Get("Cache-Control"))
	}
	// A client-side route falls back to the app (Vite React app, no 404.html).
	if r := s.do("GET", "/settings/profile", nil, "Host", host); r.status != 200 || !strings.Contains(string(r.body), "Hello Vite") {
		t.Fatalf("SPA fallback: %d", r.status)
	}
}

func TestBuildOutputOverTheLimitFails(t *testing.T) {
	s := startServer(t, "OUTPUT_LIMIT_MB=1")
	tok := s.setup("acme", "big")
	r := deployFiles(s, tok, "acme", "big", files(
		"package.json", `{"name":"big","private":true,"scripts":{"build":"node build.js"}}`,
		"build.js", `const fs=require("fs");fs.mkdirSync("dist");fs.writeFileSync("dist/index.html","x");`+
			`fs.writeFileSync("dist/big.bin",Buffer.alloc(2<<20,1))`,
	))
	st := s.waitFinal(r.str("deploymentId"), 90*time.Second)
	if st.str("status") != "failed" || stepStatus(st, "deploy") != "failed" || !strings.Contains(st.str("error"), "larger than the 1 MiB") {
		t.Fatalf("deployment: %s", tail(string(st.body), 2000))
	}
	if n := countRows(t, s, "SELECT max(attempt) FROM deployments"); n != 1 {
		t.Fatalf("an output over the limit was retried: %d attempts", n)
	}
}
