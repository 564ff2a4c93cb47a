// Package storesql holds what the SQLite and PostgreSQL stores share: the
// column lists and row scanning of every table, the encoding of times and
// JSON columns, the SQL texts that both dialects accept, and the errors both
// return. Both schemas store times as integer microseconds and steps and
// inputs as JSON text for this reason: one scanner reads a row from either.
//
// Query texts here use "?" placeholders; PostgreSQL's store rewrites them
// with Rebind.
package storesql

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// Scanner is a row: *sql.Row, *sql.Rows, pgx.Row and pgx.Rows all are.
type Scanner interface{ Scan(dest ...any) error }

// Micros stores a time as integer microseconds since the epoch, UTC: it
// sorts, compares and round-trips without driver-specific time parsing.
func Micros(t time.Time) int64 { return t.UTC().UnixMicro() }

// FromMicros is Micros' inverse.
func FromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// OptMicros encodes an optional time; nil is NULL.
func OptMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: Micros(*t), Valid: true}
}

// FromOptMicros is OptMicros' inverse.
func FromOptMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := FromMicros(v.Int64)
	return &t
}

// Rebind turns "?" placeholders into PostgreSQL's "$1", "$2", ... The shared
// texts hold no "?" inside string literals, so no quoting is considered.
func Rebind(query string) string {
	var sb strings.Builder
	sb.Grow(len(query) + 8)
	n := 0
	for _, r := range query {
		if r != '?' {
			sb.WriteRune(r)
			continue
		}
		n++
		sb.WriteString("$" + strconv.Itoa(n))
	}
	return sb.String()
}

// EncodeSteps returns the JSON of a deployment's step states.
func EncodeSteps(steps libra.StepStates) (string, error) {
	s, err := json.Marshal(steps)
	if err != nil {
		return "", fmt.Errorf("encode steps: %w", err)
	}
	return string(s), nil
}

// EncodeDeployment returns the JSON of a deployment's steps and input.
func EncodeDeployment(d *libra.Deployment) (steps, input string, err error) {
	s, err := EncodeSteps(d.Steps)
	if err != nil {
		return "", "", err
	}
	in, err := json.Marshal(d.Input)
	if err != nil {
		return "", "", fmt.Errorf("encode input: %w", err)
	}
	return s, string(in), nil
}

// PrepareDeployment gives a deployment without a site label a fresh one,
// derived from its project's host name.
func PrepareDeployment(d *libra.Deployment) {
	if d.SiteLabel == "" {
		host, _ := libra.ProjectHost(d.ProjectID)
		d.SiteLabel = libra.NewSiteLabel(host)
	}
}

// QuotaExceeded is the error of a deployment refused by its org's limit.
func QuotaExceeded(org string, limit int, month string) error {
	return &libra.Error{Code: libra.CodeQuotaExceeded,
		Message: fmt.Sprintf("org %q has used its %d deployments for %s", org, limit, month),
		Details: map[string]any{"limit": limit, "month": month}}
}

// ParseCursor reads a deployment list cursor: the seq of the last
// deployment of the previous page. The first page starts above every seq, so
// one spelling of the query serves all pages with an index range scan.
func ParseCursor(cursor string) (int64, error) {
	if cursor == "" {
		return math.MaxInt64, nil
	}
	n, err := strconv.ParseInt(cursor, 10, 64)
	if err != nil || n <= 0 {
		return 0, libra.Errorf(libra.CodeValidation, "cursor %.40q is not one this service returned", cursor)
	}
	return n, nil
}

// NewDomainToken returns 160 random bits, hex-encoded: unguessable, and
// plain enough to paste into any DNS provider's TXT field.
func NewDomainToken() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("domain token: %w", err)
	}
	return "libra-verify-" + hex.EncodeToString(b), nil
}

// Flag stores a bool as 0 or 1: an integer column reads the same through
// both drivers.
func Flag(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Rows is what *sql.Rows and pgx.Rows have in common, less Close, whose
// signatures differ: the caller closes.
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// Collect scans every row with scan: an empty slice, never nil, when none.
// Both stores use it so that their read loops are one loop.
func Collect[T any](rows Rows, scan func(Scanner) (T, error)) ([]T, error) {
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
