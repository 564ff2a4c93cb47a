package build

import "testing"

// The outputs below were captured from the real tools (npm 11, pnpm 9,
// yarn 1 and 4, bun 1.x, vite 7 and 8, esbuild, tsc, node 20), with paths
// shortened.
func TestMissingPackage(t *testing.T) {
	tests := []struct {
		name, output, want string
	}{
		{
			name: "npm 11, unscoped",
			output: `npm error code E404
npm error 404 Not Found - GET https://registry.npmjs.org/libra-nonexistent-pkg-zz91 - Not found
npm error 404
npm error 404  The requested resource 'libra-nonexistent-pkg-zz91@^1.0.0' could not be found or you do not have permission to access it.
npm error 404
npm error 404 Note that you can also install from a
npm error 404 tarball, folder, http url, or git url.
npm error A complete log of this run can be found in: /home/build/.npm/_logs/2026-11-26T20_08_51_279Z-debug-0.log`,
			want: "libra-nonexistent-pkg-zz91",
		},
		{
			name: "npm 11, scoped (the URL escapes the slash)",
			output: `npm error code E404
npm error 404 Not Found - GET https://registry.npmjs.org/@libra-nonexist-scope%2fzz - Not found
npm error 404
npm error 404  The requested resource '@libra-nonexist-scope/zz@^1.0.0' could not be found or you do not have permission to access it.`,
			want: "@libra-nonexist-scope/zz",
		},
		{
			name: "npm 9, is not in this registry",
			output: `npm ERR! code E404
npm ERR! 404  '@acme/ui-kit@2.1.0' is not in this registry.
npm ERR! 404 You should bug the author to publish it (or use the name yourself!)`,
			want: "@acme/ui-kit",
		},
		{
			name: "npm, version that does not exist",
			output: `npm error code ETARGET
npm error notarget No matching version found for react@^99.0.0.
npm error notarget In most cases you or one of your dependencies are requesting
npm error notarget a package version that doesn't exist.`,
			want: "react@^99.0.0",
		},
		{
			name: "pnpm 9, unknown package",
			output: ` ERR_PNPM_FETCH_404  GET https://registry.npmjs.org/libra-nonexistent-pkg-zz91: Not Found - 404

This error happened while installing a direct dependency of /work

libra-nonexistent-pkg-zz91 is not in the npm registry, or you have no permission to fetch it.

No authorization header was set for the request.`,
			want: "libra-nonexistent-pkg-zz91",
		},
		{
			name: "pnpm 9, version that does not exist",
			output: ` ERR_PNPM_NO_MATCHING_VERSION  No matching version found for react@^99.0.0

This error happened while installing a direct dependency of /work

The latest release of react is "19.3.1".`,
			want: "react@^99.0.0",
		},
		{
			name: "yarn 1, unknown package",
			output: `info No lockfile found.
[1/4] Resolving packages...
error Couldn't find package "libra-nonexistent-pkg-zz91" on the "npm" registry.
info Visit https://yarnpkg.com/en/docs/cli/install for documentation about this command.`,
			want: "libra-nonexistent-pkg-zz91",
		},
		{
			name: "yarn 1, unknown transitive package",
			output: `[1/4] Resolving packages...
error Couldn't find package "left-padz@^1.3.0" required by "some-lib@1.0.0" on the "npm" registry.`,
			want: "left-padz",
		},
		{
			name: "yarn 1, unexpected error with the registry URL",
			output: `[1/4] Resolving packages...
error An unexpected error occurred: "https://registry.yarnpkg.com/@acme%2fmissing: Not found".`,
			want: "@acme/missing",
		},
		{
			name: "yarn 1, version that does not exist",
			output: `[1/4] Resolving packages...
error Couldn't find any versions for "react" that matches "^99.0.0"
info Visit https://yarnpkg.com/en/docs/cli/install for documentation about this command.`,
			want: "react@^99.0.0",
		},
		{
			name: "yarn 4, unknown package",
			output: `➤ YN0000: · Yarn 4.18.1
➤ YN0000: ┌ Resolution step
➤ YN0035: │ libra-nonexistent-pkg-zz91@npm:^1.0.0: Package not found
➤ YN0035: │   Response Code: 404 (Not Found)
➤ YN0035: │   Request Method: GET
➤ YN0035: │   Request URL: https://registry.yarnpkg.com/libra-nonexistent-pkg-zz91
➤ YN0000: └ Completed
➤ YN0000: · Failed with errors in 0s 148ms`,
			want: "libra-nonexistent-pkg-zz91",
		},
		{
			name: "yarn 4, version that does not exist",
			output: `➤ YN0000: ┌ Resolution step
➤ YN0082: │ react@npm:^99.0.0: No candidates found
➤ YN0000: └ Completed in 0s 405ms`,
			want: "react@^99.0.0",
		},
		{
			name: "bun, unknown package",
			output: `bun install v1.4.5 (a7733435c)
Resolving dependencies
Resolved, downloaded and extracted [1]
error: GET https://registry.npmjs.org/libra-nonexistent-pkg-zz91 - 404
error: libra-nonexistent-pkg-zz91@^1.0.0 failed to resolve`,
			want: "libra-nonexistent-pkg-zz91",
		},
		{
			name: "bun, version that does not exist",
			output: `bun install v1.4.5 (a7733435c)
Resolving dependencies
error: No version matching "^99.0.0" found for specifier "react" (but package exists)
error: react@^99.0.0 failed to resolve`,
			want: "react@^99.0.0",
		},
		{
			name: "vite 7 (rollup)",
			output: `vite v7.0.6 building for production...
✓ 2 modules transformed.
✗ Build failed in 103ms
error during build:
[vite]: Rollup failed to resolve import "axios" from "/work/src/main.ts".
This is most likely unintended because it can break your application at runtime.
If you do want to externalize this module explicitly add it to
` + "`build.rollupOptions.external`" + `
    at viteLog (file:///work/node_modules/vite/dist/node/chunks/config.js:33885:57)`,
			want: "axios",
		},
		{
			name: "vite 8 (rolldown), with colours",
			output: "vite v8.3.8 building client environment for production...\n\x1b[31m✗\x1b[39m Build failed in 143ms\n" +
				"\x1b[31merror during build:\n\x1b[31mBuild failed with 1 error:\n\nError: [vite]: Rolldown failed to resolve import \"\x1b[36mreact-router-dom\x1b[39m\" from \"/work/src/App.tsx\".\n",
			want: "react-router-dom",
		},
		{
			name:   "vite dev server style, deep import",
			output: `[plugin:vite:import-analysis] Failed to resolve import "@tanstack/react-query/devtools" from "src/main.tsx". Does the file exist?`,
			want:   "@tanstack/react-query",
		},
		{
			name: "esbuild",
			output: `✘ [ERROR] Could not resolve "date-fns/format"

    src/main.ts:2:18:
      2 │ import { format } from "date-fns/format";
        ╵                        ~~~~~~~~~~~~~~~~~

  You can mark the path "date-fns/format" as external to exclude it from the bundle, which will remove this error and leave the unresolved path in the bundle.

1 error`,
			want: "date-fns",
		},
		{
			name: "tsc before vite build",
			output: `> app@0.0.0 build
> tsc -b && vite build

src/App.tsx(3,22): error TS2307: Cannot find module 'lucide-react' or its corresponding type declarations.
src/App.tsx(4,19): error TS2307: Cannot find module './components/Card' or its corresponding type declarations.`,
			want: "lucide-react",
		},
		{
			name: "a relative import first, a package after",
			output: `src/App.tsx(4,19): error TS2307: Cannot find module './components/Card' or its corresponding type declarations.
src/App.tsx(5,19): error TS2307: Cannot find module '@/lib/utils' or its corresponding type declarations.
src/App.tsx(6,22): error TS2307: Cannot find module 'zustand' or its corresponding type declarations.`,
			want: "zustand",
		},
		{
			name: "node, CommonJS",
			output: `node:internal/modules/cjs/loader:1210
  throw err;
  ^

Error: Cannot find module 'left-padx'
Require stack:
- /work/build.js`,
			want: "left-padx",
		},
		{
			name: "node, ESM",
			output: `node:internal/modules/esm/resolve:873
  throw new ERR_MODULE_NOT_FOUND(packageName, fileURLToPath(base), null);
        ^

Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'tailwindcss' imported from /work/postcss.config.js`,
			want: "tailwindcss",
		},
		{
			name:   "node, a file inside a broken package",
			output: `Error: Cannot find module '/work/node_modules/@rollup/rollup-linux-x64-gnu/rollup.node'`,
			want:   "@rollup/rollup-linux-x64-gnu",
		},
		{
			name: "webpack (create-react-app)",
			output: `Creating an optimized production build...
Failed to compile.

Module not found: Error: Can't resolve 'react-icons/fa' in '/work/src/components'`,
			want: "react-icons",
		},
		{
			name: "build tool not installed",
			output: `> app@0.0.0 build
> vite build

sh: 1: vite: not found`,
			want: "vite",
		},
		{
			name:   "tsc not installed names typescript",
			output: "> tsc && vite build\n\nsh: tsc: command not found\n",
			want:   "typescript",
		},
		{
			name:   "an unknown command is not guessed",
			output: "sh: 1: my-script: not found\n",
			want:   "",
		},
		{
			name:   "node built-ins, virtual modules and aliases are not packages",
			output: `Could not resolve "node:fs"` + "\n" + `Failed to resolve import "virtual:pwa-register" from "src/main.ts"` + "\n" + `Could not resolve "~/components/Nav"` + "\n" + `Could not resolve "#imports"`,
			want:   "",
		},
		{
			name: "a successful install names nothing",
			output: `added 215 packages, and audited 216 packages in 6s

48 packages are looking for funding
  run ` + "`npm fund`" + ` for details

found 0 vulnerabilities`,
			want: "",
		},
		{
			name:   "a tarball URL is not a package name",
			output: "npm error 404 Not Found - GET https://registry.npmjs.org/foo/-/foo-1.0.0.tgz - Not found\n",
			want:   "",
		},
		{
			name:   "empty output",
			output: "",
			want:   "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MissingPackage(tt.output); got != tt.want {
				t.Errorf("MissingPackage = %q, want %q", got, tt.want)
			}
		})
	}
}
