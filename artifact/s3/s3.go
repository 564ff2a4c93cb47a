// Package s3 is the artifact store on an S3-compatible object store: each
// blob is one object named by the SHA-256 of its content, under
// <prefix>sha256/<64 hex>.
//
// Writes are conditional (If-None-Match: *) and carry the content's SHA-256
// checksum, so the server refuses damaged uploads and never replaces a blob:
// two nodes storing the same content at once both succeed, one by writing
// it and the other by finding it there.
package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/singleflight"

	libra "github.com/libra-deploy/libra-deploy"
)

// Options says where the store is and how to reach it.
type Options struct {
	Bucket string
	// Prefix is prepended to every key; empty or ending in "/".
	Prefix string
	// Endpoint is the server's base URL for S3-compatible servers
	// (versitygw, MinIO, Garage); empty means AWS itself. With an endpoint,
	// keys are addressed path-style, which such servers expect.
	Endpoint string
	Region   string
	// AccessKeyID and SecretAccessKey, when both set, are the credentials;
	// otherwise the SDK's usual chain (environment, shared files, instance
	// roles) is used.
	AccessKeyID     string
	SecretAccessKey string
	// TempDir holds uploads larger than memSpool while their digest is
	// computed; default os.TempDir().
	TempDir string
	// ResponseTimeout bounds the wait for a response's headers, so that a
	// server that accepts connections but never answers fails requests
	// (and POST /deploy answers 503) instead of holding them; default
	// DefaultResponseTimeout.
	ResponseTimeout time.Duration
}

// DefaultResponseTimeout is Options.ResponseTimeout's default: far above
// any healthy answer, uploads of the largest file included (the headers
// come once the body is sent).
const DefaultResponseTimeout = time.Minute

// Store is a content-addressed blob store in one bucket. It keeps no state
// of its own, so any number of processes may share the bucket.
type Store struct {
	client  *s3.Client
	bucket  string
	prefix  string
	tempDir string
	checks  singleflight.Group
}

var _ libra.ArtifactStore = (*Store)(nil)

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ParseURL splits s3://BUCKET[/PREFIX] into a bucket and a key prefix that
// is empty or ends in "/".
func ParseURL(raw string) (bucket, prefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("artifact store %q: want s3://BUCKET[/PREFIX]", raw)
	}
	if !bucketName.MatchString(u.Host) {
		return "", "", fmt.Errorf("artifact store %q: %q is not a valid bucket name (3-63 of a-z, 0-9, '.', '-')", raw, u.Host)
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	return u.Host, prefix, nil
}

// New returns a store for opts. It does not contact the server: Check does.
func New(ctx context.Context, opts Options) (*Store, error) {
	if !bucketName.MatchString(opts.Bucket) {
		return nil, fmt.Errorf("s3 artifact store: invalid bucket name %q", opts.Bucket)
	}
	if opts.Prefix != "" && !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	if opts.ResponseTimeout <= 0 {
		opts.ResponseTimeout = DefaultResponseTimeout
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.ResponseHeaderTimeout = opts.ResponseTimeout
	})
	loaders := []func(*config.LoadOptions) error{config.WithRegion(opts.Region), config.WithHTTPClient(httpClient)}
	if opts.AccessKeyID != "" && opts.SecretAccessKey != "" {
		loaders = append(loaders, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKeyID, opts.SecretAccessKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loaders...)
	if err != nil {
		return nil, fmt.Errorf("s3 artifact store: load AWS configuration: %w", err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
			o.UsePathStyle = true
		}
		// The SDK's default adds CRC checksums and trailers that
		// S3-compatible servers handle unevenly; Put sends its own SHA-256.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	tmp := opts.TempDir
	if tmp == "" {
		tmp = os.TempDir()
	}
	return &Store{client: client, bucket: opts.Bucket, prefix: opts.Prefix, tempDir: tmp}, nil
}

// Client returns the underlying S3 client, for tests and tools.
func (s *Store) Client() *s3.Client { return s.client }

// Bucket returns the bucket's name.
func (s *Store) Bucket() string { return s.bucket }

// Check reports whether the bucket can be reached. The API asks before
// accepting a deployment that stores no blob, so concurrent callers share
// one request in flight: an answer at most one round trip old, and a burst
// of accepts costs the server a HEAD per round trip, not one each.
func (s *Store) Check(ctx context.Context) error {
	ch := s.checks.DoChan("", func() (any, error) {
		// Detached: the callers sharing it may outlive the first one.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultResponseTimeout)
		defer cancel()
		_, err := s.client.HeadBucket(cctx, &s3.HeadBucketInput{Bucket: &s.bucket})
		return nil, err
	})
	select {
	case <-ctx.Done():
		return ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return fmt.Errorf("s3 bucket %s: %w", s.bucket, res.Err)
		}
		return nil
	}
}

// blobsPrefix is where blob keys start; Walk lists under it.
func (s *Store) blobsPrefix() string { return s.prefix + "sha256/" }

// key maps a checked digest to its object key.
func (s *Store) key(digest string) (string, error) {
	if err := libra.CheckDigest(digest); err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	return s.blobsPrefix() + strings.TrimPrefix(digest, libra.DigestPrefix), nil
}

// Put stores r's content. Content already stored is not uploaded again, but
// its time is brought forward (see touch), as artifact/fs does: the garbage
// collector's grace period counts from the last time anyone stored a blob.
func (s *Store) Put(ctx context.Context, r io.Reader) (string, int64, error) {
	sp, err := spool(r, s.tempDir)
	if err != nil {
		return "", 0, err
	}
	defer sp.close()
	digest := libra.DigestPrefix + hex.EncodeToString(sp.sum)
	key, _ := s.key(digest)
	for attempt := 0; ; attempt++ {
		done, err := s.putOnce(ctx, key, sp, attempt > 0 || sp.size >= headFirst)
		if err != nil {
			return "", 0, fmt.Errorf("store %s: %w", digest, err)
		}
		if done {
			return digest, sp.size, nil
		}
		if attempt >= 4 {
			return "", 0, fmt.Errorf("store %s: still contended after %d attempts", digest, attempt+1)
		}
		if err := sleep(ctx, time.Duration(attempt+1)*50*time.Millisecond); err != nil {
			return "", 0, err
		}
	}
}

// headFirst is the size from which Put asks whether a blob is there before
// sending it: a redeploy's unchanged files then cost a HEAD, not an upload.
// Smaller ones are sent at once, which costs no more than the HEAD.
const headFirst = 256 << 10

// putOnce tries once to store the blob. done false with no error means
// another writer of the same key was in the way: try again.
func (s *Store) putOnce(ctx context.Context, key string, sp *spooled, askFirst bool) (done bool, err error) {
	if askFirst {
		if found, err := s.present(ctx, key, sp.size); err != nil || found {
			return s.refreshed(ctx, key, sp.size, err)
		}
	}
	err = s.putNew(ctx, key, sp)
	switch {
	case err == nil:
		return true, nil
	case isStatus(err, http.StatusPreconditionFailed):
		// Stored by someone else meanwhile.
		return s.refreshed(ctx, key, sp.size, nil)
	case isStatus(err, http.StatusConflict):
		// AWS: another conditional write of this key is in flight.
		return false, nil
	}
	// A server may refuse a conditional write before reading the body and
	// drop the connection, which the client sees as a reset, not a 412.
	if found, herr := s.present(ctx, key, sp.size); herr == nil && found {
		return s.refreshed(ctx, key, sp.size, nil)
	}
	return false, fmt.Errorf("upload: %w", err)
}

// refreshed touches a blob found stored; one removed by a collector since
// it was found is to be uploaded again (done false).
func (s *Store) refreshed(ctx context.Context, key string, size int64, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	err = s.touch(ctx, key, size)
	if isStatus(err, http.StatusNotFound) || errors.Is(err, errVanished) {
		return false, nil
	}
	return err == nil, err
}

// present reports whether the blob is stored, with the size its content has.
func (s *Store) present(ctx context.Context, key string, size int64) (bool, error) {
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if isStatus(err, http.StatusNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up stored blob: %w", err)
	}
	if got := aws.ToInt64(head.ContentLength); got != size {
		return false, fmt.Errorf("stored blob %s has %d bytes, want %d", key, got, size)
	}
	return true, nil
}

func (s *Store) putNew(ctx context.Context, key string, sp *spooled) error {
	body, err := sp.reader()
	if err != nil {
		return err
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         &s.bucket,
		Key:            &key,
		Body:           body,
		ContentLength:  aws.Int64(sp.size),
		ContentType:    aws.String("application/octet-stream"),
		IfNoneMatch:    aws.String("*"),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sp.sum)),
	})
	return err
}

// touch records that an existing blob was stored again, in its metadata
// (storedAtKey), by copying the object onto itself, then checks it is the
// size the caller stored: the name is the content's hash, so the right size
// means the right content. A self-copy moves LastModified forward on AWS
// but not on every S3-compatible server (versitygw's posix backend keeps
// the file's time), hence the metadata, which all of them replace.
func (s *Store) touch(ctx context.Context, key string, size int64) error {
	_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            &s.bucket,
		Key:               &key,
		CopySource:        aws.String(s.bucket + "/" + key),
		MetadataDirective: types.MetadataDirectiveReplace,
		Metadata:          map[string]string{storedAtKey: time.Now().UTC().Format(time.RFC3339Nano)},
		ContentType:       aws.String("application/octet-stream"),
	})
	if err != nil {
		return fmt.Errorf("refresh stored blob %s: %w", key, err)
	}
	found, err := s.present(ctx, key, size)
	if err == nil && !found {
		err = fmt.Errorf("stored blob %s: %w", key, errVanished)
	}
	return err
}

// errVanished is a blob removed (by a collector) while it was refreshed.
var errVanished = errors.New("removed while refreshed")

// Open returns the blob's content, or an error wrapping libra.ErrNotFound.
func (s *Store) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	key, err := s.key(digest)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, notFound(digest, "open", err)
	}
	return out.Body, nil
}

// storedAtKey is the user metadata that touch sets.
const storedAtKey = "stored-at"

// Stat returns the blob's size and the last time it was stored: the later
// of its LastModified and the time touch recorded.
func (s *Store) Stat(ctx context.Context, digest string) (int64, time.Time, error) {
	key, err := s.key(digest)
	if err != nil {
		return 0, time.Time{}, err
	}
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return 0, time.Time{}, notFound(digest, "stat", err)
	}
	stored := aws.ToTime(head.LastModified)
	if t, err := time.Parse(time.RFC3339Nano, head.Metadata[storedAtKey]); err == nil && t.After(stored) {
		stored = t
	}
	return aws.ToInt64(head.ContentLength), stored, nil
}

// notFound wraps a 404 as libra.ErrNotFound and anything else as it is.
func notFound(digest, op string, err error) error {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) || isStatus(err, http.StatusNotFound) {
		return fmt.Errorf("artifact %s: %w", digest, libra.ErrNotFound)
	}
	return fmt.Errorf("%s artifact %s: %w", op, digest, err)
}

// isStatus reports whether err is an HTTP response with the given status.
func isStatus(err error, status int) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == status
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// memSpool is how much of an upload is held in memory; larger ones go to a
// temporary file. The key is the content's hash, so the whole content has
// to be read before the upload can start.
const memSpool = 1 << 20

// spooled is content read once to learn its digest, ready to be sent (and
// re-sent on a retry) from memory or a temporary file.
type spooled struct {
	mem  []byte
	file *os.File
	sum  []byte
	size int64
}

func spool(r io.Reader, tempDir string) (*spooled, error) {
	h := sha256.New()
	var buf bytes.Buffer
	n, err := io.Copy(io.MultiWriter(&buf, h), io.LimitReader(r, memSpool+1))
	if err != nil {
		return nil, fmt.Errorf("read blob: %w", err)
	}
	sp := &spooled{size: n}
	if n <= memSpool {
		sp.mem, sp.sum = buf.Bytes(), h.Sum(nil)
		return sp, nil
	}
	f, err := os.CreateTemp(tempDir, "s3-put-*")
	if err != nil {
		return nil, fmt.Errorf("spool blob: %w", err)
	}
	sp.file = f
	_ = os.Remove(f.Name()) // the open descriptor keeps it while needed
	if _, err := f.Write(buf.Bytes()); err != nil {
		sp.close()
		return nil, fmt.Errorf("spool blob: %w", err)
	}
	rest, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		sp.close()
		return nil, fmt.Errorf("spool blob: %w", err)
	}
	sp.size += rest
	sp.sum = h.Sum(nil)
	return sp, nil
}

// reader returns the content from its start.
func (sp *spooled) reader() (io.ReadSeeker, error) {
	if sp.file == nil {
		return bytes.NewReader(sp.mem), nil
	}
	if _, err := sp.file.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind spooled blob: %w", err)
	}
	return sp.file, nil
}

func (sp *spooled) close() {
	if sp.file != nil {
		_ = sp.file.Close()
	}
}

func isNotFound(err error) bool { return errors.Is(err, libra.ErrNotFound) }
