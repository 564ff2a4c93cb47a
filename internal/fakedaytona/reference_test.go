package fakedaytona_test

import (
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/fakedaytona"
	"github.com/libra-deploy/libra-deploy/internal/fakesandbox"
)

// Daytona's own TypeScript SDK against the fake. It needs the npm package
// installed (about 100 MB), so it runs only when LIBRA_DAYTONA_JS_DIR names
// a directory where `npm install @daytonaio/sdk` ran.
func TestReferenceClientAgainstFake(t *testing.T) {
	fake := fakedaytona.Start(t, "dtn_reference_key")
	fakesandbox.Reference{SDK: "Daytona SDK", DirVar: "LIBRA_DAYTONA_JS_DIR", Script: "testdata/daytona-ref.mjs",
		Env:  []string{"DAYTONA_API_KEY=dtn_reference_key", "DAYTONA_API_URL=" + fake.APIURL},
		Want: []string{"exit 0", "hi from the reference client", "exit-check", `read: "hi from the reference client\n"`, "deleted"},
	}.Run(t)
	if created, deleted := fake.Counts(); created != 1 || deleted != 1 {
		t.Errorf("created %d deleted %d", created, deleted)
	}
}
