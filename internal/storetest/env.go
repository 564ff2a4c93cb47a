package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// testEnv: set, replace, list in key order, delete, and an unknown project.
func testEnv(t *testing.T, s libra.Store) {
	mustProject(t, s, "envp", "o")
	mustProject(t, s, "envq", "o")
	at := libra.Now().Truncate(time.Microsecond)
	steps := []struct {
		name string
		v    libra.EnvVar
	}{
		{"plain", libra.EnvVar{Key: "B_PLAIN", Value: "one", UpdatedAt: at}},
		{"secret", libra.EnvVar{Key: "A_SECRET", Value: "v1:sealed", Secret: true, UpdatedAt: at}},
		{"replace", libra.EnvVar{Key: "B_PLAIN", Value: "two", UpdatedAt: at.Add(time.Second)}},
	}
	for _, st := range steps {
		if err := s.PutEnv(ctx, "envp", st.v); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
	}
	got, err := s.ListEnv(ctx, "envp")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != "A_SECRET" || !got[0].Secret || got[0].Value != "v1:sealed" ||
		got[1].Value != "two" || got[1].Secret || !sameTime(got[1].UpdatedAt, at.Add(time.Second)) {
		t.Fatalf("environment of envp: %+v", got)
	}
	if other, err := s.ListEnv(ctx, "envq"); err != nil || other == nil || len(other) != 0 {
		t.Fatalf("environment of a project without any: %v, %v; want an empty slice", other, err)
	}
	if err := s.PutEnv(ctx, "nope", libra.EnvVar{Key: "K", Value: "v", UpdatedAt: at}); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("put on an unknown project: %v, want ErrNotFound", err)
	}
	if err := s.DeleteEnv(ctx, "envp", "B_PLAIN"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEnv(ctx, "envp", "B_PLAIN"); !errors.Is(err, libra.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if got, _ := s.ListEnv(ctx, "envp"); len(got) != 1 || got[0].Key != "A_SECRET" {
		t.Fatalf("after delete: %+v", got)
	}
	checkEnvGoesWithProject(t, s)
}

// checkEnvGoesWithProject: deleting a project deletes its variables, and a
// new project of the same id starts with none.
func checkEnvGoesWithProject(t *testing.T, s libra.Store) {
	t.Helper()
	if _, err := s.DeleteProject(ctx, "o", "envp"); err != nil {
		t.Fatalf("delete project with variables: %v", err)
	}
	mustProject(t, s, "envp", "o")
	if got, err := s.ListEnv(ctx, "envp"); err != nil || len(got) != 0 {
		t.Fatalf("variables of a re-created project: %+v, %v", got, err)
	}
}

// testEnvCap: MaxEnvVars hold even when many writers race, a variable
// already set can still be replaced at the cap, and a refused one changes
// nothing.
func testEnvCap(t *testing.T, s libra.Store) {
	mustProject(t, s, "capped", "o")
	var wg sync.WaitGroup
	errs := make([]error, libra.MaxEnvVars+8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.PutEnv(ctx, "capped", libra.EnvVar{Key: fmt.Sprintf("K%03d", i), Value: "v", UpdatedAt: libra.Now()})
		}()
	}
	wg.Wait()
	refused := 0
	for _, err := range errs {
		if err != nil {
			wantCode(t, "put past the cap", err, libra.CodeValidation)
			refused++
		}
	}
	got, err := s.ListEnv(ctx, "capped")
	if err != nil || len(got) != libra.MaxEnvVars || refused != len(errs)-libra.MaxEnvVars {
		t.Fatalf("after %d racing puts: %d stored, %d refused, %v; want %d stored", len(errs), len(got), refused, err, libra.MaxEnvVars)
	}
	if err := s.PutEnv(ctx, "capped", libra.EnvVar{Key: got[0].Key, Value: "replaced", UpdatedAt: libra.Now()}); err != nil {
		t.Fatalf("replacing a variable at the cap: %v", err)
	}
}
