package libra

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
)

// Status is a deployment's overall state.
type Status string

const (
	StatusQueued     Status = "queued"
	StatusInProgress Status = "in_progress"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
	// StatusCancelled: stopped at its org's request (POST
	// /deployments/{id}/cancel) before it published.
	StatusCancelled Status = "cancelled"
)

// Final reports whether no further work will change the deployment.
func (s Status) Final() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// StepStatus is one step's state.
type StepStatus string

const (
	StepPending    StepStatus = "pending"
	StepInProgress StepStatus = "in_progress"
	StepCompleted  StepStatus = "completed"
	StepFailed     StepStatus = "failed"
)

// Step names a step of the workflow.
type Step string

const (
	StepValidate Step = "validate"
	StepSync     Step = "sync"
	StepSandbox  Step = "sandbox"
	StepBuild    Step = "build"
	StepDeploy   Step = "deploy"
	StepCleanup  Step = "cleanup"
)

// Steps lists the six steps in the order they run.
var Steps = []Step{StepValidate, StepSync, StepSandbox, StepBuild, StepDeploy, StepCleanup}

// StepState is what the status endpoint reports for one step.
type StepState struct {
	Status    StepStatus `json:"status"`
	Timestamp *time.Time `json:"timestamp,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// StepStates holds the state of every step, keyed by step name.
type StepStates map[Step]StepState

// NewStepStates returns all six steps pending.
func NewStepStates() StepStates {
	s := make(StepStates, len(Steps))
	for _, name := range Steps {
		s[name] = StepState{Status: StepPending}
	}
	return s
}

// Progress is the share of steps that are done, 0 to 100. A failed step counts
// as done: once a deployment has failed, its remaining work is cleanup only.
func (s StepStates) Progress() int {
	done := 0
	for _, name := range Steps {
		switch s[name].Status {
		case StepCompleted, StepFailed:
			done++
		}
	}
	return done * 100 / len(Steps)
}

// Deployment is one request to publish a project's files, and everything that
// happened to it since.
type Deployment struct {
	ID string
	// SiteLabel is the host name label of the deployment's immutable URL,
	// {SiteLabel}.{sites domain}: chosen at acceptance and never its ID,
	// which is the key to its status and logs (see NewSiteLabel).
	SiteLabel    string
	ProjectID    string
	OrgID        string
	UserID       string
	CustomDomain string
	// Target is production or preview (targets.go); Alias the stable alias
	// name the deployment serves under, "" for none. Both are fixed at
	// acceptance.
	Target Target
	Alias  string

	Status      Status
	CurrentStep Step
	// Progress only moves forward: a retried step does not take it back.
	Progress int
	Steps    StepStates
	Error    string
	URL      string

	// Input is the file tree to build: initFiles, then history edits, in order.
	Input []FileOp
	// Manifest is the digest of the published file manifest, once deployed.
	Manifest string
	// Attempt counts how many times a worker has started on this deployment.
	Attempt int

	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time

	// QuotaMonth is the calendar month ("2026-11") whose quota this
	// deployment used; QuotaRefunded is set once a platform failure gave it back.
	QuotaMonth    string
	QuotaRefunded bool
}

// LogEntry is one line of a deployment's log.
type LogEntry struct {
	Time    time.Time `json:"timestamp"`
	Step    Step      `json:"step"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
}

// deploymentIDEncoding is lowercase base32 without padding: letters and the
// digits 2-7 only, so an id is also a valid host-name label.
var deploymentIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewDeploymentID returns 128 random bits as a 26-character host-name label.
// Ids must be unguessable because GET /deploy-status needs no token.
func NewDeploymentID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return deploymentIDEncoding.EncodeToString(b[:])
}

// LooksLikeDeploymentID reports whether s has the shape of an id made by
// NewDeploymentID, so that host names and queries that cannot match skip
// the database.
func LooksLikeDeploymentID(s string) bool {
	if len(s) != 26 {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz234567") == ""
}

// siteLabelRandomChars is the random part of a site label: 13 base32
// characters carry 65 bits, too many to guess a preview URL.
const siteLabelRandomChars = 13

// SiteLabelSeparator marks the deployment namespace of host labels: a label
// that contains it names a deployment, one without names a project. New
// project ids never contain it (CheckProjectID), so the two never collide.
const SiteLabelSeparator = "--"

// maxProjectPart leaves room for the separator and the random part in one
// 63-byte DNS label.
const maxProjectPart = 63 - len(SiteLabelSeparator) - siteLabelRandomChars

// NewSiteLabel returns a fresh host label for a deployment of the project
// whose alias label is projectHost ("" when it has none):
// {projectHost}--{random}, or d--{random}. The project part makes preview
// URLs readable, as on Vercel; it is cut to fit 63 bytes.
func NewSiteLabel(projectHost string) string {
	var b [9]byte // 72 bits, of which 65 are used
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	random := deploymentIDEncoding.EncodeToString(b[:])[:siteLabelRandomChars]
	prefix := projectHost
	if len(prefix) > maxProjectPart {
		// A label may not end in '-' before the separator either, or the
		// separator would grow into "---", which still parses but reads badly.
		prefix = strings.TrimRight(prefix[:maxProjectPart], "-")
	}
	if prefix == "" {
		prefix = "d"
	}
	return prefix + SiteLabelSeparator + random
}

// IsSiteLabel reports whether a host label is in the deployment namespace.
func IsSiteLabel(label string) bool {
	return strings.Contains(label, SiteLabelSeparator) && IsHostLabel(label)
}
