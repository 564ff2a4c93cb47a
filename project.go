package libra

import "time"

// Project is a site that belongs to one org. Its production alias points at
// its current deployment: the newest completed one.
type Project struct {
	ID        string
	OrgID     string
	Name      string
	CreatedAt time.Time
	// Current is the id of the deployment its alias serves, "" before the
	// first successful deployment.
	Current string
}

// Token is an API credential. Only its SHA-256 hash is ever stored.
type Token struct {
	Hash      string
	OrgID     string
	UserID    string
	CreatedAt time.Time
	// The lifecycle fields (tokens.go).
	TokenLifecycle
	// Admin tokens also open the admin routes (metrics, queue console).
	Admin bool
}

// Quota is an org's monthly deployment allowance. Limit < 0 means no limit.
type Quota struct {
	OrgID string
	Limit int
	Month string
	Used  int
}

// QuotaMonth is the calendar month, in UTC, that a deployment made at t counts against.
func QuotaMonth(t time.Time) string { return t.UTC().Format("2006-01") }
