package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	libra "github.com/libra-deploy/libra-deploy"
)

// FileRef is one file of POST /deploy's files: content uploaded before,
// named by its digest.
type FileRef struct {
	Path   string `json:"path" minLength:"1" doc:"Same rules as initFiles paths."`
	SHA256 string `json:"sha256" doc:"The SHA-256 of the content, 64 lower-case hex digits, as uploaded with PUT /files/{sha256}."`
	Size   int64  `json:"size" minimum:"0" doc:"The content's size in bytes; at most 25 MiB."`
}

// MissingFiles are the details of a MISSING_FILES error.
type MissingFiles struct {
	Missing []string `json:"missing" doc:"The sha256 of each file the org must upload first."`
}

// checkFileRefs checks the files of a request beside its initFiles (whose
// paths seen holds) and returns their operations, content not yet checked
// against what the org holds (checkHeldFiles does that).
func checkFileRefs(p *problems, req *DeployRequest, seen map[string]int) []plannedOp {
	ops := make([]plannedOp, 0, len(req.Files))
	mine := make(map[string]int, len(req.Files))
	for i, f := range req.Files {
		field := fmt.Sprintf("files[%d]", i)
		if op, ok := checkFileRef(p, field, f, seen, mine); ok {
			mine[f.Path] = i
			ops = append(ops, plannedOp{op: op})
		}
	}
	checkDirClashes(p, req, seen, mine)
	return ops
}

func checkFileRef(p *problems, field string, f FileRef, seen, mine map[string]int) (libra.FileOp, bool) {
	if err := libra.CheckPath(f.Path); err != nil {
		p.invalid(field+".path", "%v", err)
		return libra.FileOp{}, false
	}
	if j, dup := seen[f.Path]; dup {
		p.invalid(field+".path", "duplicate path %q, also at initFiles[%d]", f.Path, j)
		return libra.FileOp{}, false
	}
	if j, dup := mine[f.Path]; dup {
		p.invalid(field+".path", "duplicate path %q, also at files[%d]", f.Path, j)
		return libra.FileOp{}, false
	}
	digest, err := libra.DigestOfHex(f.SHA256)
	if err != nil {
		p.invalid(field+".sha256", "%v", err)
		return libra.FileOp{}, false
	}
	switch {
	case f.Size < 0:
		p.invalid(field+".size", "must not be negative")
		return libra.FileOp{}, false
	case f.Size > libra.MaxFileBytes:
		p.large(field+".size", "file is %d bytes; the limit is %d", f.Size, libra.MaxFileBytes)
		return libra.FileOp{}, false
	}
	return libra.FileOp{Path: f.Path, Type: libra.OpCreate, Digest: digest, Size: f.Size}, true
}

// checkDirClashes reports a path of files that another path, in files or
// initFiles, needs as a directory, and the other way round.
func checkDirClashes(p *problems, req *DeployRequest, seen, mine map[string]int) {
	for i, f := range req.Files {
		if j, ok := mine[f.Path]; !ok || j != i {
			continue
		}
		if dir, where := clashingDir(f.Path, seen, mine); dir != "" {
			p.invalid(fmt.Sprintf("files[%d].path", i), "%q needs %q to be a directory, but %s is a file there", f.Path, dir, where)
		}
	}
	for i, f := range req.InitFiles {
		if j, ok := seen[f.Path]; ok && j == i {
			if dir, where := clashingDir(f.Path, nil, mine); dir != "" {
				p.invalid(fmt.Sprintf("initFiles[%d].path", i), "%q needs %q to be a directory, but %s is a file there", f.Path, dir, where)
			}
		}
	}
}

// clashingDir returns the first parent directory of path that is a file in
// initFiles (seen) or files (mine), and where.
func clashingDir(path string, seen, mine map[string]int) (dir, where string) {
	for dir = path; ; {
		k := strings.LastIndexByte(dir, '/')
		if k < 0 {
			return "", ""
		}
		dir = dir[:k]
		if j, ok := seen[dir]; ok {
			return dir, fmt.Sprintf("initFiles[%d]", j)
		}
		if j, ok := mine[dir]; ok {
			return dir, fmt.Sprintf("files[%d]", j)
		}
	}
}

// isFileRef tells the operations of files, which name a blob and carry no
// content, from those whose content the request brought.
func isFileRef(o *plannedOp) bool {
	return o.op.Digest != "" && o.content.size() == 0 && !o.content.isBin && o.op.Content == nil
}

// checkHeldFiles refuses a deployment naming content its org does not
// hold, with the list of what to upload, before anything is written. The
// sizes the client gave must be the stored ones: usage counts them.
func (s *server) checkHeldFiles(ctx context.Context, orgID string, ops []plannedOp) *ErrorResponse {
	var digests []string
	for i := range ops {
		if isFileRef(&ops[i]) {
			digests = append(digests, ops[i].op.Digest)
		}
	}
	if len(digests) == 0 {
		return nil
	}
	held, e := s.heldBlobs(ctx, orgID, digests)
	if e != nil {
		return e
	}
	return refsAgainstHeld(ops, held)
}

func refsAgainstHeld(ops []plannedOp, held map[string]int64) *ErrorResponse {
	var missing []string
	listed := map[string]bool{}
	var p problems
	for i := range ops {
		o := &ops[i]
		if !isFileRef(o) {
			continue
		}
		size, ok := held[o.op.Digest]
		switch {
		case !ok && !listed[o.op.Digest]:
			listed[o.op.Digest] = true
			missing = append(missing, strings.TrimPrefix(o.op.Digest, libra.DigestPrefix))
		case ok && size != o.op.Size:
			p.invalid("files", "%s: size is %d, but its uploaded content is %d bytes", o.op.Path, o.op.Size, size)
		}
	}
	if len(missing) > 0 {
		return newError(http.StatusBadRequest, libra.CodeMissingFiles,
			fmt.Sprintf("%d file contents are not uploaded yet; PUT each to /files/{sha256}, then deploy again; nothing was created", len(missing)),
			MissingFiles{Missing: missing})
	}
	return p.err()
}

// recordStoredFiles notes the blobs this request stored as its org's, so a
// later deployment may name them by digest. A failure costs only a
// re-upload later, so it is logged, not fatal.
func (s *server) recordStoredFiles(ctx context.Context, orgID string, ops []plannedOp) {
	var blobs []libra.OrgBlob
	for i := range ops {
		if ops[i].op.Digest != "" && !isFileRef(&ops[i]) {
			blobs = append(blobs, libra.OrgBlob{Digest: ops[i].op.Digest, Size: ops[i].op.Size})
		}
	}
	if len(blobs) == 0 {
		return
	}
	if err := s.cfg.Store.RecordBlobs(ctx, orgID, blobs, libra.Now()); err != nil {
		loggerFrom(ctx).Warn("record stored files", "org_id", orgID, "error", err)
	}
}
