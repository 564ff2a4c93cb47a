package storesql

import (
	"database/sql"
	"encoding/json"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
)

// DeploymentColumns are what ScanDeployment reads.
const DeploymentColumns = `id, site_label, project_id, org_id, user_id, custom_domain, status, current_step, progress, steps,
	error, url, input, manifest, attempt, created_at, started_at, finished_at, quota_month, quota_refunded, target, alias`

// ScanDeployment reads a row of DeploymentColumns.
func ScanDeployment(row Scanner) (*libra.Deployment, error) {
	var d libra.Deployment
	var steps, input string
	var created int64
	var started, finished sql.NullInt64
	err := row.Scan(&d.ID, &d.SiteLabel, &d.ProjectID, &d.OrgID, &d.UserID, &d.CustomDomain, &d.Status, &d.CurrentStep, &d.Progress,
		&steps, &d.Error, &d.URL, &input, &d.Manifest, &d.Attempt, &created, &started, &finished, &d.QuotaMonth, &d.QuotaRefunded,
		&d.Target, &d.Alias)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(steps), &d.Steps); err != nil {
		return nil, fmt.Errorf("decode steps of %s: %w", d.ID, err)
	}
	if err := json.Unmarshal([]byte(input), &d.Input); err != nil {
		return nil, fmt.Errorf("decode input of %s: %w", d.ID, err)
	}
	d.CreatedAt = FromMicros(created)
	d.StartedAt = FromOptMicros(started)
	d.FinishedAt = FromOptMicros(finished)
	return &d, nil
}

// ProjectColumns are what ScanProject reads.
const ProjectColumns = `id, org_id, name, created_at, current_deployment`

// ScanProject reads a row of ProjectColumns.
func ScanProject(row Scanner) (libra.Project, error) {
	var p libra.Project
	var created int64
	var current sql.NullString
	if err := row.Scan(&p.ID, &p.OrgID, &p.Name, &created, &current); err != nil {
		return p, err
	}
	p.CreatedAt = FromMicros(created)
	p.Current = current.String
	return p, nil
}

// InfoColumns are what ScanInfo reads, from deployments d joined with their
// projects p. The production test is spelled so that it is a boolean in
// PostgreSQL and 0 or 1 in SQLite, never NULL.
const InfoColumns = `d.seq, d.id, d.project_id, d.org_id, d.status, d.error, d.url, d.manifest,
	d.created_at, d.started_at, d.finished_at, (p.current_deployment IS NOT NULL AND p.current_deployment = d.id),
	d.target, d.alias`

// ScanInfo reads a row of InfoColumns and returns its seq too.
func ScanInfo(row Scanner) (int64, libra.DeploymentInfo, error) {
	var d libra.DeploymentInfo
	var seq, created int64
	var started, finished sql.NullInt64
	err := row.Scan(&seq, &d.ID, &d.ProjectID, &d.OrgID, &d.Status, &d.Error, &d.URL, &d.Manifest,
		&created, &started, &finished, &d.Production, &d.Target, &d.Alias)
	if err != nil {
		return 0, d, err
	}
	d.CreatedAt = FromMicros(created)
	d.StartedAt = FromOptMicros(started)
	d.FinishedAt = FromOptMicros(finished)
	return seq, d, nil
}

// DomainColumns are what ScanDomain reads.
const DomainColumns = `domain, project_id, created_at, verified_at, checked_at, check_error`

// ScanDomain reads a row of DomainColumns.
func ScanDomain(row Scanner) (libra.Domain, error) {
	var d libra.Domain
	var created int64
	var verified, checked sql.NullInt64
	if err := row.Scan(&d.Domain, &d.ProjectID, &created, &verified, &checked, &d.CheckError); err != nil {
		return d, err
	}
	d.CreatedAt = FromMicros(created)
	d.VerifiedAt = FromOptMicros(verified)
	d.CheckedAt = FromOptMicros(checked)
	return d, nil
}

// ScanLog reads a row of (ts, step, level, message).
func ScanLog(row Scanner) (libra.LogEntry, error) {
	var e libra.LogEntry
	var ts int64
	if err := row.Scan(&ts, &e.Step, &e.Level, &e.Message); err != nil {
		return e, err
	}
	e.Time = FromMicros(ts)
	return e, nil
}

// ScanPruned reads a row of Prunable and returns its queue job id too.
func ScanPruned(row Scanner) (libra.PrunedDeployment, sql.NullInt64, error) {
	var p libra.PrunedDeployment
	var created int64
	var job sql.NullInt64
	if err := row.Scan(&p.ID, &p.SiteLabel, &p.ProjectID, &p.Status, &created, &job); err != nil {
		return p, job, err
	}
	p.CreatedAt = FromMicros(created)
	return p, job, nil
}

// ScanRefs reads a row of RefsColumns and returns its seq too.
func ScanRefs(row Scanner) (int64, libra.DeploymentRefs, error) {
	var r libra.DeploymentRefs
	var seq int64
	var input string
	if err := row.Scan(&seq, &r.ID, &r.ProjectID, &r.Status, &r.Manifest, &input); err != nil {
		return 0, r, err
	}
	if err := json.Unmarshal([]byte(input), &r.Inputs); err != nil {
		// A row whose input cannot be read would silently drop its
		// blobs from what is kept: stop instead.
		return 0, r, fmt.Errorf("decode input of %s: %w", r.ID, err)
	}
	return seq, r, nil
}
