package s3

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/gc"
)

// Blobs lists and removes the blobs of a Store for the garbage collector. It
// is a type of its own, as gc.DirBlobs is for artifact/fs, so that the
// store handed to writers has no way to delete.
type Blobs struct{ s *Store }

var _ gc.Blobs = (*Blobs)(nil)

// NewBlobs works on s's bucket and prefix.
func NewBlobs(s *Store) *Blobs { return &Blobs{s: s} }

// Walk calls fn for each blob object. Keys under the prefix that are not a
// blob's name are not reported, so they are never removed either.
func (b *Blobs) Walk(ctx context.Context, fn func(gc.Blob) error) error {
	prefix := b.s.blobsPrefix()
	pages := s3.NewListObjectsV2Paginator(b.s.client, &s3.ListObjectsV2Input{
		Bucket: &b.s.bucket, Prefix: &prefix,
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list blobs: %w", err)
		}
		for _, o := range page.Contents {
			digest := libra.DigestPrefix + strings.TrimPrefix(aws.ToString(o.Key), prefix)
			if libra.CheckDigest(digest) != nil {
				continue
			}
			blob := gc.Blob{Digest: digest, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}
			if err := fn(blob); err != nil {
				return err
			}
		}
	}
	return nil
}

// Remove deletes a blob unless it was stored at or after cutoff.
//
// The listing shows only LastModified, so the time a Put that found the
// blob recorded (Store.touch) is read here, just before the delete: such a
// blob is kept.
// S3 offers no delete conditional on the modification time outside its
// directory buckets, so a Put landing between that read and the delete (one
// round trip) is not seen; the grace period makes this need a Put of old,
// unreferenced content within those milliseconds.
func (b *Blobs) Remove(ctx context.Context, digest string, cutoff time.Time) (bool, error) {
	key, err := b.s.key(digest)
	if err != nil {
		return false, fmt.Errorf("remove blob: %w", err)
	}
	_, stored, err := b.s.Stat(ctx, digest)
	if err != nil {
		if isNotFound(err) {
			return false, nil // removed meanwhile, by another node's collector
		}
		return false, fmt.Errorf("remove blob: %w", err)
	}
	if !stored.Before(cutoff) {
		return false, nil
	}
	if _, err := b.s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.s.bucket, Key: &key}); err != nil {
		return false, fmt.Errorf("remove blob %s: %w", digest, err)
	}
	return true, nil
}
