package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// MissingBatch is how many digests one POST /files/missing asks about: the
// server takes 10,000, and half keeps the body well under its 1 MiB limit.
const MissingBatch = 5000

// Missing returns, of hashes (hex SHA-256), those the server wants
// uploaded, asking in batches.
func (c *Client) Missing(ctx context.Context, hashes []string) ([]string, error) {
	missing := []string{}
	for start := 0; start < len(hashes); start += MissingBatch {
		batch := hashes[start:min(start+MissingBatch, len(hashes))]
		var out struct {
			Missing []string `json:"missing"`
		}
		if err := c.call(ctx, http.MethodPost, "/files/missing", map[string]any{"hashes": batch}, &out); err != nil {
			return nil, err
		}
		missing = append(missing, out.Missing...)
	}
	return missing, nil
}

// Upload sends one file's content, opened anew for each attempt, as the
// blob sha256. progress, when set, is told of bytes as they are sent, and
// of negative counts when an attempt failed and its bytes will be sent again.
func (c *Client) Upload(ctx context.Context, sha256 string, size int64, open func() (io.ReadCloser, error), progress func(int64)) error {
	var sent int64
	body := func() (io.ReadCloser, error) {
		if progress != nil && sent > 0 {
			progress(-sent)
		}
		sent = 0
		f, err := open()
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", sha256, err)
		}
		return &counting{ReadCloser: f, add: func(n int64) {
			sent += n
			if progress != nil {
				progress(n)
			}
		}}, nil
	}
	resp, err := c.send(ctx, request{method: http.MethodPut, path: "/files/" + sha256, body: body, size: size,
		header: http.Header{"Content-Type": {"application/octet-stream"}}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// counting reports what is read through it.
type counting struct {
	io.ReadCloser
	add func(int64)
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.add(int64(n))
	return n, err
}

// MissingFiles returns the digests a MISSING_FILES refusal lists, or nil
// for any other error.
func MissingFiles(err error) []string {
	var e *Error
	if !errors.As(err, &e) || e.Code != "MISSING_FILES" {
		return nil
	}
	var d struct {
		Missing []string `json:"missing"`
	}
	_ = json.Unmarshal(e.Details, &d)
	return d.Missing
}
