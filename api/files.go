package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	libra "github.com/libra-deploy/libra-deploy"
)

// Content-addressed uploads (issue 11): a client asks which of its files'
// digests the server lacks, PUTs only those, then deploys by digest. What
// is "present" is answered per org (libra.UploadStore), never from the
// shared artifact store alone.

// MissingRequest is the body of POST /files/missing.
type MissingRequest struct {
	Hashes []string `json:"hashes" maxItems:"10000" doc:"SHA-256 digests of file contents, as 64 lower-case hex digits; at most 10,000."`
}

// MissingResponse lists the digests the org must upload before it deploys them.
type MissingResponse struct {
	Missing []string `json:"missing" doc:"The asked digests this org has not uploaded (or whose blob is gone), in the order asked, each once."`
}

type missingInput struct {
	Body MissingRequest
}

type missingOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         MissingResponse
}

// FileStored answers an accepted upload.
type FileStored struct {
	Success   bool      `json:"success"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size"`
	Timestamp time.Time `json:"timestamp"`
}

type putFileOutput struct {
	Body FileStored
}

// putFileInput leaves the body to the handler, which streams it into the
// artifact store: a file of 25 MiB is never held in memory.
type putFileInput struct {
	SHA256 string `path:"sha256" doc:"The SHA-256 of the body, as 64 lower-case hex digits."`
	length int64
	body   io.Reader
}

// Resolve takes the body's reader and declared length; Huma reads nothing.
func (in *putFileInput) Resolve(ctx huma.Context) []error {
	if err := ctx.SetReadDeadline(time.Now().Add(deployBodyTimeout)); err != nil {
		return []error{fmt.Errorf("set body deadline: %w", err)}
	}
	n, err := strconv.ParseInt(ctx.Header("Content-Length"), 10, 64)
	if err != nil {
		n = -1
	}
	in.length, in.body = n, ctx.BodyReader()
	return nil
}

// digestsOf turns the asked hashes into store digests, each once, reporting
// the malformed ones.
func digestsOf(hashes []string) ([]string, *ErrorResponse) {
	var p problems
	seen := make(map[string]bool, len(hashes))
	out := make([]string, 0, len(hashes))
	for i, h := range hashes {
		d, err := libra.DigestOfHex(h)
		if err != nil {
			p.invalid(fmt.Sprintf("hashes[%d]", i), "%v", err)
			continue
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out, p.err()
}

func (s *server) filesMissing(ctx context.Context, in *missingInput) (*missingOutput, error) {
	digests, e := digestsOf(in.Body.Hashes)
	if e != nil {
		return nil, e
	}
	held, err := s.heldBlobs(ctx, tokenOf(ctx).OrgID, digests)
	if err != nil {
		return nil, err
	}
	missing := make([]string, 0)
	for _, d := range digests {
		if _, ok := held[d]; !ok {
			missing = append(missing, d[len(libra.DigestPrefix):])
		}
	}
	return &missingOutput{CacheControl: "no-store", Body: MissingResponse{Missing: missing}}, nil
}

// blobStatter is an artifact store that can tell whether a blob is there
// without reading it (artifact/fs, artifact/s3, the cache).
type blobStatter interface {
	Stat(ctx context.Context, digest string) (int64, time.Time, error)
}

// statConcurrency bounds the existence checks of one request: on S3 each
// is a round trip.
const statConcurrency = 16

// heldBlobs returns, of digests, those the org holds whose blob is still
// stored, with their sizes. A recorded upload that no deployment came to
// use is collected after the grace period; its row then says nothing.
func (s *server) heldBlobs(ctx context.Context, orgID string, digests []string) (map[string]int64, *ErrorResponse) {
	held, err := s.cfg.Store.OrgBlobs(ctx, orgID, digests)
	if err != nil {
		return nil, clientError(ctx, "look up blobs", fmt.Errorf("blobs of org %s: %w", orgID, err))
	}
	st, ok := s.cfg.Artifacts.(blobStatter)
	if !ok || len(held) == 0 {
		return held, nil
	}
	gone := make(chan string, len(held))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(statConcurrency)
	for d := range held {
		g.Go(func() error {
			_, _, err := st.Stat(gctx, d)
			if errors.Is(err, libra.ErrNotFound) {
				gone <- d
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, s.storeUnavailable(ctx, fmt.Errorf("stat blobs: %w", err))
	}
	close(gone)
	for d := range gone {
		delete(held, d)
	}
	return held, nil
}

// storeUnavailable is the 503 for an artifact store that failed.
func (s *server) storeUnavailable(ctx context.Context, err error) *ErrorResponse {
	if ctx.Err() != nil {
		return clientError(ctx, "artifact store", err)
	}
	loggerFrom(ctx).Error("artifact store unavailable", "error", err)
	e := newError(http.StatusServiceUnavailable, libra.CodeUnavailable, "the artifact store is unavailable; try again shortly", nil)
	e.GetHeaders().Set("Retry-After", storeRetryAfter)
	return e
}

func (s *server) putFile(ctx context.Context, in *putFileInput) (*putFileOutput, error) {
	digest, err := libra.DigestOfHex(in.SHA256)
	if err != nil {
		return nil, fieldError("sha256", err.Error())
	}
	if in.length > libra.MaxFileBytes {
		return nil, fileTooLarge(in.length)
	}
	body := &checkedBody{r: in.body, h: sha256.New(), want: in.SHA256}
	got, size, err := s.cfg.Artifacts.Put(ctx, body)
	if e := body.problem(err); e != nil {
		return nil, e
	}
	if err != nil {
		return nil, s.storeUnavailable(ctx, fmt.Errorf("store upload: %w", err))
	}
	if got != digest {
		return nil, clientError(ctx, "store upload", fmt.Errorf("artifact store named %s as %s", digest, got))
	}
	org := tokenOf(ctx).OrgID
	if err := s.cfg.Store.RecordBlobs(ctx, org, []libra.OrgBlob{{Digest: digest, Size: size}}, libra.Now()); err != nil {
		return nil, clientError(ctx, "record upload", fmt.Errorf("record blob of org %s: %w", org, err))
	}
	return &putFileOutput{Body: FileStored{Success: true, SHA256: in.SHA256, Size: size, Timestamp: libra.Now()}}, nil
}

func fileTooLarge(n int64) *ErrorResponse {
	return newError(http.StatusRequestEntityTooLarge, libra.CodePayloadTooLarge,
		fmt.Sprintf("file is larger than the limit of %d bytes", libra.MaxFileBytes),
		map[string]any{"limitBytes": libra.MaxFileBytes, "sizeBytes": n})
}

// Errors checkedBody returns in place of the body's end, so that the
// artifact store fails the Put and keeps nothing.
var (
	errBodyTooLarge = errors.New("upload is larger than the per-file limit")
	errDigestWrong  = errors.New("upload does not match its sha256")
)

// checkedBody passes a body through while hashing it, and turns its end
// into an error when it was too long or is not the content it claims.
type checkedBody struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	want string
	got  string
}

func (b *checkedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	b.h.Write(p[:n])
	if b.n > libra.MaxFileBytes {
		return n, errBodyTooLarge
	}
	if err == io.EOF {
		if b.got = hex.EncodeToString(b.h.Sum(nil)); b.got != b.want {
			return n, errDigestWrong
		}
	}
	return n, err
}

// problem turns what went wrong with the body into the client's error; nil
// when the body was fine (the store may still have failed).
func (b *checkedBody) problem(err error) *ErrorResponse {
	var ne net.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errBodyTooLarge):
		return fileTooLarge(b.n)
	case errors.Is(err, errDigestWrong):
		return newError(http.StatusBadRequest, libra.CodeValidation, "the body's SHA-256 is not the one in the path; nothing was stored",
			[]FieldError{{Field: "sha256", Message: "the body's SHA-256 is " + b.got}})
	case errors.As(err, &ne) && ne.Timeout():
		return newError(http.StatusRequestTimeout, CodeRequestTimeout, "request body was not received in time", nil)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newError(http.StatusBadRequest, libra.CodeValidation, "request body could not be read", nil)
	}
	return nil
}

// registerFiles adds the routes of this file.
func (s *server) registerFiles(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "filesMissing",
		Method:      http.MethodPost,
		Path:        "/files/missing",
		Summary:     "Ask which file contents must be uploaded",
		Description: "Given SHA-256 digests of file contents, returns those the token's org has not uploaded (PUT /files/{sha256}) " +
			"and that none of its deployments stored. Only what this org holds counts: another org's files are never reported present.",
		Tags:         []string{"Deployments"},
		Security:     tokenSecurity,
		MaxBodyBytes: 1 << 20,
		Middlewares:  huma.Middlewares{s.authenticate, requireJSON},
		Errors:       []int{400, 401, 413, 415, 429, 503},
	}, s.filesMissing)

	huma.Register(api, huma.Operation{
		OperationID: "putFile",
		Method:      http.MethodPut,
		Path:        "/files/{sha256}",
		Summary:     "Upload one file's content",
		Description: "The raw bytes of one file, at most 25 MiB, checked against the SHA-256 in the path; stored once, " +
			"counted toward the org's usage, and usable in POST /deploy's files. Content that no deployment comes to use is " +
			"removed after the collector's grace period.",
		Tags:          []string{"Deployments"},
		DefaultStatus: http.StatusCreated,
		Security:      tokenSecurity,
		Middlewares:   huma.Middlewares{s.authenticateUpload},
		Errors:        []int{400, 401, 408, 413, 429, 503},
		RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
			"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}},
		}},
	}, s.putFile)
}

// addUploads counts into all (and tally) the blobs the org uploaded that
// its deployments do not refer to, so that uploading without deploying is
// not free storage.
func (s *server) addUploads(ctx context.Context, orgID string, all map[string]int64, tally *UsageTotal) *ErrorResponse {
	list, err := s.cfg.Store.ListOrgBlobs(ctx, orgID)
	if err != nil {
		return clientError(ctx, "list uploads", fmt.Errorf("uploads of org %s: %w", orgID, err))
	}
	var digests []string
	for _, b := range list {
		if _, ok := all[b.Digest]; !ok {
			digests = append(digests, b.Digest)
		}
	}
	held, e := s.heldBlobs(ctx, orgID, digests)
	if e != nil {
		return e
	}
	for d, size := range held {
		all[d] = size
		tally.Files++
		tally.Bytes += size
	}
	return nil
}

// uploadRateFactor is how many more uploads than other requests a token may
// make: a project of 10,000 small files is 10,000 PUTs, which the API's
// limit (10/s by default) would stretch to a quarter of an hour. Each PUT
// is still bounded by size and streamed, so the bucket guards against
// floods, not against honest clients.
const uploadRateFactor = 50

func newUploadLimiters(limit rate.Limit, burst int) *limiters {
	if limit == rate.Inf {
		return newLimiters(limit, burst)
	}
	return newLimiters(limit*uploadRateFactor, burst*uploadRateFactor)
}

// authenticateUpload is authenticate with the uploads' own bucket.
func (s *server) authenticateUpload(ctx huma.Context, next func(huma.Context)) {
	s.authenticateIn(s.uploads, ctx, next)
}
