package workflow

import (
	"context"
	"errors"
	"fmt"

	libra "github.com/libra-deploy/libra-deploy"
)

// validate re-checks, at run time, what the API checked at accept time, and
// what may have changed since: the project may be gone, its domain taken.
// Everything it rejects is the input's fault, so nothing here is retried.
func (ru *run) validate(ctx context.Context) error {
	d := ru.d
	for name, v := range map[string]string{"projectId": d.ProjectID, "orgId": d.OrgID, "userId": d.UserID} {
		if err := libra.CheckID(v); err != nil {
			return libra.Permanent(libra.Errorf(libra.CodeValidation, "%s %v", name, err))
		}
	}
	p, err := ru.r.Store.Project(ctx, d.ProjectID)
	if errors.Is(err, libra.ErrNotFound) {
		return libra.Permanent(libra.Errorf(libra.CodeProjectNotFound, "project %q does not exist", d.ProjectID))
	}
	if err != nil {
		return fmt.Errorf("load project: %w", err)
	}
	if p.OrgID != d.OrgID {
		return libra.Permanent(libra.Errorf(libra.CodeForbidden, "project %q does not belong to org %q", d.ProjectID, d.OrgID))
	}
	if d.CustomDomain != "" {
		// The API refused reserved names at acceptance; checked again
		// because API_HOSTS may have changed while this one was queued.
		if err := libra.NewHostPolicy(ru.r.SitesDomain, ru.r.APIHosts).CheckCustomDomain(d.CustomDomain); err != nil {
			return libra.Permanent(libra.Errorf(libra.CodeValidation, "customDomain %v", err))
		}
		owner, err := ru.r.Store.DomainOwner(ctx, d.CustomDomain)
		if err != nil {
			return fmt.Errorf("look up domain: %w", err)
		}
		if owner != "" && owner != d.ProjectID {
			return libra.Permanent(libra.Errorf(libra.CodeDomainTaken, "domain %s is attached to another project", d.CustomDomain))
		}
	}
	if len(d.Input) == 0 {
		return libra.Permanent(libra.Errorf(libra.CodeValidation, "the deployment has no files"))
	}
	if len(d.Input) > libra.MaxFiles {
		return libra.Permanent(libra.Errorf(libra.CodeValidation, "the deployment has %d file operations; the limit is %d", len(d.Input), libra.MaxFiles))
	}
	for _, op := range d.Input {
		if err := libra.CheckPath(op.Path); err != nil {
			return libra.Permanent(libra.Errorf(libra.CodeValidation, "file %q: %v", op.Path, err))
		}
	}
	ru.logs.Add(libra.StepValidate, "info", fmt.Sprintf("project %s of org %s, %d file operations, quota month %s",
		d.ProjectID, d.OrgID, len(d.Input), d.QuotaMonth))
	return nil
}
