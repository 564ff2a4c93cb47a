package storesql

import (
	"testing"

	libra "github.com/libra-deploy/libra-deploy"
)

func TestRebind(t *testing.T) {
	tests := []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE b = ?`, `SELECT a FROM t WHERE b = $1`},
		{`UPDATE t SET a = ?, b = ? WHERE c = ? AND d < ?`, `UPDATE t SET a = $1, b = $2 WHERE c = $3 AND d < $4`},
		{`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, `($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`},
		{`ünï ? ö`, `ünï $1 ö`},
	}
	for _, tt := range tests {
		if got := Rebind(tt.in); got != tt.want {
			t.Errorf("Rebind(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseCursor(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 1<<63 - 1, true},
		{"42", 42, true},
		{"0", 0, false},
		{"-3", 0, false},
		{"abc", 0, false},
		{"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseCursor(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseCursor(%q) = %d, %v", tt.in, got, err)
		}
		if err != nil && libra.ErrorCode(err) != libra.CodeValidation {
			t.Errorf("ParseCursor(%q): code %s, want %s", tt.in, libra.ErrorCode(err), libra.CodeValidation)
		}
	}
}
