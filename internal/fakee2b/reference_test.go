package fakee2b_test

import (
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/fakee2b"
	"github.com/libra-deploy/libra-deploy/internal/fakesandbox"
)

// E2B's own JavaScript SDK against the fake. It needs the npm package
// installed, so it runs only when LIBRA_E2B_JS_DIR names a directory where
// `npm install e2b@2.39.0` ran: the last release that creates sandboxes
// with POST /sandboxes, as the published spec has it (later ones use
// /v2/sandboxes, which that spec does not describe). The key has the
// format the SDK checks before it sends anything.
func TestReferenceClientAgainstFake(t *testing.T) {
	const key = "e2b_0123456789abcdef0123456789abcdef01234567"
	fake := fakee2b.Start(t, key)
	fakesandbox.Reference{SDK: "e2b SDK", DirVar: "LIBRA_E2B_JS_DIR", Script: "testdata/e2b-ref.mjs",
		Env: []string{"E2B_API_KEY=" + key, "E2B_API_URL=" + fake.APIURL, "E2B_SANDBOX_URL=" + fake.SandboxURL},
		Want: []string{`stdout: "hi from the reference client\n"`, `stderr: "exit-check\n"`, "exit 0",
			`read: "hi from the reference client\n"`, "killed"},
	}.Run(t)
	if st := fake.Stats(); st.Created != 1 || st.Killed != 1 || st.Extended != 1 {
		t.Errorf("stats %+v", st)
	}
}
