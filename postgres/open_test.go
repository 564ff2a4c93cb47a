package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libra-deploy/libra-deploy/postgres"
)

// A wrong POSTGRES_URL fails Open with a message that says what is wrong
// and never repeats the password it holds.
func TestOpenErrorsHideThePassword(t *testing.T) {
	const password = "s3cret-pw-in-url"
	tests := []struct{ name, url, says string }{
		{"unreachable", "postgres://u:" + password + "@127.0.0.1:1/db", "connect to PostgreSQL"},
		{"malformed host", "postgres://u:" + password + "@%zz/db", "not a valid PostgreSQL connection string"},
		{"not a URL", "host=/nonexistent password=" + password + " port=notanumber", "not a valid PostgreSQL connection string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			db, err := postgres.Open(ctx, postgres.Options{URL: tt.url})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.says) || strings.Contains(err.Error(), password) {
				t.Fatalf("error %q: want it to say %q and hide the password", err, tt.says)
			}
		})
	}
}
