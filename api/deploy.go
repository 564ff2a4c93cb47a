package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/metrics"
)

// DeployRequest is the body of POST /deploy. Unknown top-level fields are
// rejected so that a misspelt "initfiles" fails loudly instead of deploying
// an empty project.
type DeployRequest struct {
	ProjectID       string           `json:"projectId" minLength:"1" maxLength:"128" pattern:"^[A-Za-z0-9._-]+$" doc:"The project to deploy; it must exist and belong to the token's org."`
	OrgID           string           `json:"orgId" minLength:"1" maxLength:"128" pattern:"^[A-Za-z0-9._-]+$" doc:"Must be the org of the token."`
	UserID          string           `json:"userId" minLength:"1" maxLength:"128" pattern:"^[A-Za-z0-9._-]+$" doc:"The user on whose behalf the deployment is made; must be the user of the token."`
	CustomDomain    string           `json:"customDomain,omitempty" maxLength:"253" doc:"A host name to serve the project on, e.g. www.example.com, attached pending DNS verification when the deployment completes. Not an IP address, localhost, an API host name, or under the sites domain."`
	InitFiles       []InitFile       `json:"initFiles,omitempty" doc:"The project's files. At most 10,000 files in initFiles and all diffs together; each file at most 25 MiB decoded; paths unique."`
	Files           []FileRef        `json:"files,omitempty" doc:"Files by content, uploaded before with PUT /files/{sha256} (ask POST /files/missing which): beside or instead of initFiles, and applied after them. Counted with initFiles and diffs toward the 10,000 files; paths unique across both."`
	HistoryMessages []HistoryMessage `json:"historyMessages,omitempty" maxItems:"100000" doc:"The conversation that produced the project; the diffs of its messages are applied, in order, on top of initFiles. At most 100,000 messages."`
	// Targets and aliases (issue 11, targets.go).
	Target string `json:"target,omitempty" enum:"production,preview" doc:"production (the default): the deployment goes live on the project's production alias when it completes, unless a newer one already has. preview: it gets its own URL only and never moves production nor custom domains; POST /deployments/{id}/promote makes it production. A preview takes no customDomain."`
	Alias  string `json:"alias,omitempty" maxLength:"63" doc:"A stable alias name (a branch, a chat, a pull request): the deployment is also served at {alias}--{projectId}.{sites domain}, which always serves the newest completed deployment of the project with this alias. Lowercase letters, digits and '-', no '--'; the whole host label at most 63 bytes. Not available for projects whose id looks like the random part of a deployment host name (13 letters and digits, or 18 hex digits)."`
}

// InitFile is one file of the project.
type InitFile struct {
	Path     string `json:"path" minLength:"1" doc:"Relative path with '/' separators: no leading '/', no '..', '.' or empty segments, no backslash or control characters, at most 1,024 bytes."`
	Content  string `json:"content" doc:"The file's content, as text or, with encoding base64, as standard base64."`
	Encoding string `json:"encoding,omitempty" enum:"utf8,base64" doc:"How content is encoded; utf8 when absent."`
}

// HistoryMessage is one chat message. Chat clients attach their own fields
// (ids, times, attachments), so fields not named here are accepted and ignored.
type HistoryMessage struct {
	_       struct{}    `additionalProperties:"true"`
	Role    string      `json:"role" enum:"user,assistant"`
	Content string      `json:"content"`
	Diff    []DiffEntry `json:"diff,omitempty" doc:"File changes this message made, applied in order."`
}

// DiffEntry is one file change in a history message.
type DiffEntry struct {
	_        struct{} `additionalProperties:"true"`
	Path     string   `json:"path" minLength:"1" doc:"Same rules as initFiles paths."`
	Type     string   `json:"type" enum:"create,edit,delete"`
	Modified *string  `json:"modified,omitempty" doc:"The file's full new content; required for create and edit, ignored for delete."`
	Encoding string   `json:"encoding,omitempty" enum:"utf8,base64" doc:"How modified is encoded; utf8 when absent."`
}

// deployInput is filled by its Resolve method (deploybody.go), which reads
// the body itself; documentDeployBody documents it as a DeployRequest.
type deployInput struct {
	body []byte
}

// DeployAccepted is the answer to an accepted deployment.
type DeployAccepted struct {
	Success      bool         `json:"success"`
	DeploymentID string       `json:"deploymentId" doc:"Poll GET /deploy-status?id= with it."`
	Status       libra.Status `json:"status" enum:"queued"`
	Message      string       `json:"message"`
	Timestamp    time.Time    `json:"timestamp"`
}

type deployOutput struct {
	Body DeployAccepted
}

// maxDetails caps how many problems one error lists, so a request with
// 10,000 bad paths does not get a megabyte of details back.
const maxDetails = 50

// problems collects what is wrong with a request before anything is written.
type problems struct {
	bad      []FieldError // 400
	tooLarge []FieldError // 413
	more     int
}

func (p *problems) add(list *[]FieldError, field, format string, args ...any) {
	if len(p.bad)+len(p.tooLarge) >= maxDetails {
		p.more++
		return
	}
	*list = append(*list, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p *problems) invalid(field, format string, args ...any) { p.add(&p.bad, field, format, args...) }
func (p *problems) large(field, format string, args ...any) {
	p.add(&p.tooLarge, field, format, args...)
}

// err returns nil when nothing was wrong. Size problems win: a client that
// sent too much must learn that first, whatever else is wrong.
func (p *problems) err() *ErrorResponse {
	list, status, code := p.bad, http.StatusBadRequest, libra.CodeValidation
	if len(p.tooLarge) > 0 {
		list, status, code = p.tooLarge, http.StatusRequestEntityTooLarge, libra.CodePayloadTooLarge
	}
	if len(list) == 0 {
		return nil
	}
	msg := summarize(list)
	if p.more > 0 {
		msg = fmt.Sprintf("%d or more problems with the request; see details", len(list)+p.more)
	}
	return newError(status, code, msg, list)
}

// fileContent is a file's content, held decoded until it is stored.
type fileContent struct {
	text   string // utf8 content, used as is to avoid a copy
	binary []byte // decoded base64 content
	isBin  bool
}

func (c fileContent) size() int64 {
	if c.isBin {
		return int64(len(c.binary))
	}
	return int64(len(c.text))
}

func (c fileContent) reader() io.Reader {
	if c.isBin {
		return bytes.NewReader(c.binary)
	}
	return strings.NewReader(c.text)
}

func decodeContent(s, encoding string) (fileContent, error) {
	switch encoding {
	case "", "utf8":
		return fileContent{text: s}, nil
	case "base64":
		// Padding is optional in the wild; line breaks are skipped by the
		// decoder either way.
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			b, err = base64.RawStdEncoding.DecodeString(s)
		}
		if err != nil {
			return fileContent{}, fmt.Errorf("content is not valid base64")
		}
		return fileContent{binary: b, isBin: true}, nil
	}
	return fileContent{}, fmt.Errorf("unknown encoding %q", encoding)
}

// content decodes a file's content and checks its size, reporting what is
// wrong against field. ok is false when it reported something.
func (p *problems) content(field, s, encoding string) (c fileContent, ok bool) {
	c, err := decodeContent(s, encoding)
	if err != nil {
		p.invalid(field, "%v", err)
		return c, false
	}
	if c.size() > libra.MaxFileBytes {
		p.large(field, "file is %d bytes; the limit is %d", c.size(), libra.MaxFileBytes)
		return c, false
	}
	return c, true
}

// plannedOp is a libra.FileOp whose content is not stored yet.
type plannedOp struct {
	op      libra.FileOp
	content fileContent
}

// checkDeploy validates everything about the request that needs no store,
// and decodes the file contents. Nothing is written.
func (s *server) checkDeploy(req *DeployRequest) ([]plannedOp, string, *ErrorResponse) {
	var p problems
	for _, f := range []struct{ name, v string }{{"projectId", req.ProjectID}, {"orgId", req.OrgID}, {"userId", req.UserID}} {
		if err := libra.CheckID(f.v); err != nil {
			p.invalid(f.name, "%v", err)
		}
	}
	domain := ""
	if req.CustomDomain != "" {
		if err := s.hosts.CheckCustomDomain(req.CustomDomain); err != nil {
			p.invalid("customDomain", "%v", err)
		} else {
			domain = libra.NormalizeDomain(req.CustomDomain)
		}
	}

	count := len(req.InitFiles) + len(req.Files)
	for _, m := range req.HistoryMessages {
		count += len(m.Diff)
	}
	if count > libra.MaxFiles {
		// Checked before any content is decoded: the count alone decides.
		p.large("initFiles", "%d files in initFiles and diffs together; the limit is %d", count, libra.MaxFiles)
		return nil, "", p.err()
	}

	ops := make([]plannedOp, 0, count)
	seen := make(map[string]int, len(req.InitFiles))
	for i, f := range req.InitFiles {
		field := fmt.Sprintf("initFiles[%d]", i)
		if err := libra.CheckPath(f.Path); err != nil {
			p.invalid(field+".path", "%v", err)
			continue
		}
		if j, dup := seen[f.Path]; dup {
			p.invalid(field+".path", "duplicate path %q, also at initFiles[%d]", f.Path, j)
			continue
		}
		seen[f.Path] = i
		c, ok := p.content(field+".content", f.Content, f.Encoding)
		if !ok {
			continue
		}
		ops = append(ops, plannedOp{op: libra.FileOp{Path: f.Path, Type: libra.OpCreate, Size: c.size()}, content: c})
	}
	// A path that is a file and also a directory of another file cannot be
	// written; say so now rather than fail the sync step later.
	for i, f := range req.InitFiles {
		if j, ok := seen[f.Path]; !ok || j != i {
			continue // invalid or a duplicate, already reported
		}
		for dir := f.Path; ; {
			k := strings.LastIndexByte(dir, '/')
			if k < 0 {
				break
			}
			dir = dir[:k]
			if j, clash := seen[dir]; clash {
				p.invalid(fmt.Sprintf("initFiles[%d].path", i), "%q needs %q to be a directory, but initFiles[%d] is a file there", f.Path, dir, j)
				break
			}
		}
	}

	ops = append(ops, checkFileRefs(&p, req, seen)...)

	for mi, m := range req.HistoryMessages {
		if m.Role != "user" && m.Role != "assistant" {
			// Huma's schema check runs first; this keeps the rule true
			// even if validation is ever skipped for speed.
			p.invalid(fmt.Sprintf("historyMessages[%d].role", mi), "must be user or assistant")
		}
		for di, d := range m.Diff {
			field := fmt.Sprintf("historyMessages[%d].diff[%d]", mi, di)
			if err := libra.CheckPath(d.Path); err != nil {
				p.invalid(field+".path", "%v", err)
				continue
			}
			switch d.Type {
			case libra.OpDelete:
				ops = append(ops, plannedOp{op: libra.FileOp{Path: d.Path, Type: libra.OpDelete}})
			case libra.OpCreate, libra.OpEdit:
				if d.Modified == nil {
					p.invalid(field+".modified", "is required for a %s", d.Type)
					continue
				}
				c, ok := p.content(field+".modified", *d.Modified, d.Encoding)
				if !ok {
					continue
				}
				ops = append(ops, plannedOp{op: libra.FileOp{Path: d.Path, Type: d.Type, Size: c.size()}, content: c})
			default:
				p.invalid(field+".type", "must be create, edit or delete")
			}
		}
	}
	if e := p.err(); e != nil {
		return nil, "", e
	}
	return ops, domain, nil
}

// putConcurrency bounds parallel blob writes: enough to hide per-file
// latency (fsync, a network round trip to S3) without a goroutine per file.
const putConcurrency = 8

// storeContents writes every file's content to the artifact store and fills
// in the digests. A blob left behind by a request that fails later is
// harmless: blobs are content-addressed and collected separately.
func (s *server) storeContents(ctx context.Context, ops []plannedOp) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, putConcurrency)
	inline := int64(0)
	for i := range ops {
		if ops[i].op.Type == libra.OpDelete || ops[i].op.Digest != "" {
			continue // nothing to store, or stored already (files by digest)
		}
		if n := ops[i].content.size(); n <= libra.InlineMaxBytes && inline+n <= libra.InlineMaxTotalBytes {
			inline += n
			if ops[i].content.isBin {
				ops[i].op.Content = ops[i].content.binary
			} else {
				ops[i].op.Content = []byte(ops[i].content.text)
			}
			if ops[i].op.Content == nil {
				ops[i].op.Content = []byte{} // an empty file is still a file
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(o *plannedOp) {
			defer func() { <-sem; wg.Done() }()
			digest, size, err := s.cfg.Artifacts.Put(ctx, o.content.reader())
			if err == nil && size != o.content.size() {
				err = fmt.Errorf("artifact store kept %d of %d bytes", size, o.content.size())
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("store %s: %w", o.op.Path, err)
				}
				mu.Unlock()
				cancel()
				return
			}
			o.op.Digest = digest
		}(&ops[i])
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func (s *server) deploy(ctx context.Context, in *deployInput) (*deployOutput, error) {
	tok := tokenOf(ctx)
	req, derr := decodeDeploy(in.body)
	if derr != nil {
		return nil, derr
	}
	ops, domain, verr := s.checkDeploy(req)
	if verr != nil {
		return nil, verr
	}
	target, verr := checkTarget(req)
	if verr != nil {
		return nil, verr
	}
	if req.OrgID != tok.OrgID {
		return nil, newError(http.StatusForbidden, libra.CodeForbidden, "this token may deploy only for its own org",
			[]FieldError{{Field: "orgId", Message: "does not match the token's org"}})
	}
	if req.UserID != tok.UserID {
		return nil, newError(http.StatusForbidden, libra.CodeForbidden, "this token may deploy only as its own user",
			[]FieldError{{Field: "userId", Message: "does not match the token's user"}})
	}
	proj, err := s.cfg.Store.Project(ctx, req.ProjectID)
	if errors.Is(err, libra.ErrNotFound) {
		return nil, newError(http.StatusNotFound, libra.CodeProjectNotFound,
			fmt.Sprintf("project %q not found", req.ProjectID), []FieldError{{Field: "projectId", Message: "no such project"}})
	}
	if err == nil && proj.OrgID != tok.OrgID {
		// The contract says 403 here (DESIGN.md, issue 2): the client
		// learns the id is taken, which project ids are not secret enough
		// to hide.
		return nil, newError(http.StatusForbidden, libra.CodeForbidden,
			fmt.Sprintf("project %q belongs to another org", req.ProjectID), []FieldError{{Field: "projectId", Message: "belongs to another org"}})
	}
	if err != nil {
		return nil, clientError(ctx, "load project", fmt.Errorf("project %s: %w", req.ProjectID, err))
	}
	if domain != "" {
		// Refused now rather than after a build: the validate step checks
		// again (the domain may be taken meanwhile), and Publish decides.
		owner, err := s.cfg.Store.DomainOwner(ctx, domain)
		if err != nil {
			return nil, clientError(ctx, "look up domain", fmt.Errorf("domain %s: %w", domain, err))
		}
		if owner != "" && owner != req.ProjectID {
			return nil, newError(http.StatusConflict, libra.CodeDomainTaken, fmt.Sprintf("domain %s is attached to another project", domain),
				[]FieldError{{Field: "customDomain", Message: "attached to another project"}})
		}
	}

	if e := s.checkHeldFiles(ctx, tok.OrgID, ops); e != nil {
		return nil, e
	}
	if e := s.storeFiles(ctx, ops); e != nil {
		return nil, e
	}
	s.recordStoredFiles(ctx, tok.OrgID, ops)
	input := make([]libra.FileOp, len(ops))
	for i := range ops {
		input[i] = ops[i].op
	}
	now := libra.Now()
	projectHost, _ := libra.ProjectHost(req.ProjectID)
	d := &libra.Deployment{
		ID:           libra.NewDeploymentID(),
		SiteLabel:    libra.NewSiteLabel(projectHost),
		ProjectID:    req.ProjectID,
		OrgID:        req.OrgID,
		UserID:       req.UserID,
		CustomDomain: domain,
		Target:       target,
		Alias:        req.Alias,
		Status:       libra.StatusQueued,
		Steps:        libra.NewStepStates(),
		Input:        input,
		CreatedAt:    now,
		QuotaMonth:   libra.QuotaMonth(now),
	}
	if err := s.cfg.Store.CreateDeployment(ctx, d); err != nil {
		e := clientError(ctx, "create deployment", fmt.Errorf("create deployment: %w", err))
		if e.Code == libra.CodeQuotaExceeded {
			// Quotas are monthly: tell clients that honour Retry-After not
			// to come back before the month turns.
			next := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			e.GetHeaders().Set("Retry-After", strconv.Itoa(int(next.Sub(now).Seconds())+1))
		}
		return nil, e
	}
	loggerFrom(ctx).Info("deployment queued", "deployment_id", d.ID, "project_id", d.ProjectID, "org_id", d.OrgID, "files", len(input))
	metrics.DeploymentAccepted()
	return &deployOutput{Body: DeployAccepted{
		Success:      true,
		DeploymentID: d.ID,
		Status:       libra.StatusQueued,
		Message:      "Deployment queued",
		Timestamp:    now,
	}}, nil
}
