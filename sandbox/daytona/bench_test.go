package daytona_test

import (
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/fakedaytona"
	"github.com/libra-deploy/libra-deploy/internal/fakesandbox"
)

// The lifecycle, with the wait until the sandbox started, against the
// local fake.
func BenchmarkDaytonaLifecycle(b *testing.B) {
	fake := fakedaytona.Start(b, testKey)
	fake.StartAfterPolls = 0
	fakesandbox.BenchLifecycle(b, newProvider(fake, testKey), func() string { return projectDir(b) })
}
