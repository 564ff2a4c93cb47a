package e2b_test

import (
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/fakee2b"
	"github.com/libra-deploy/libra-deploy/internal/fakesandbox"
)

// The lifecycle against the local fake.
func BenchmarkE2BLifecycle(b *testing.B) {
	fake := fakee2b.Start(b, testKey)
	fakesandbox.BenchLifecycle(b, newProvider(fake, testKey, time.Minute), func() string { return projectDir(b) })
}
