// Package wiretest sends raw bytes to an HTTP/1.1 server and describes the
// responses field by field, so that tests can require two servers (the fast
// loop and net/http) to answer the same bytes the same way. Test support
// only.
package wiretest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Response is one response as read from the wire.
type Response struct {
	Header http.Header
	// Text is the status, the framing, every field but Date in order of
	// name, whether Date is valid, and the body (its digest and its first
	// 200 bytes).
	Text string
}

// Exchange sends raw on a new connection to addr, half-closes it and reads
// until the server closes. methods are the requests' methods in order,
// which reading responses needs (a HEAD response has no body).
func Exchange(addr, raw string, methods ...string) ([]Response, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return nil, err
	}
	c.(*net.TCPConn).CloseWrite()
	all, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		return nil, fmt.Errorf("read: %w", err)
	}
	return Describe(all, methods), nil
}

// Describe splits a byte stream into responses to requests of the given
// methods. What cannot be read is described rather than returned as an
// error: it is part of what the server sent.
func Describe(all []byte, methods []string) []Response {
	var out []Response
	br := bufio.NewReader(bytes.NewReader(all))
	for _, method := range methods {
		if _, err := br.Peek(1); err != nil {
			break
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			out = append(out, Response{Text: "unreadable response: " + err.Error()})
			break
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			out = append(out, Response{Text: "unreadable body: " + err.Error()})
			break
		}
		var sb strings.Builder
		fmt.Fprintf(&sb, "%s te=%v cl=%d close=%v\n", resp.Status, resp.TransferEncoding, resp.ContentLength, resp.Close)
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range resp.Header {
				if k != "Date" && !yield(k) {
					return
				}
			}
		}) {
			fmt.Fprintf(&sb, "%s: %q\n", k, resp.Header[k])
		}
		if d := resp.Header.Get("Date"); d == "" {
			sb.WriteString("no Date\n")
		} else if _, err := http.ParseTime(d); err != nil {
			fmt.Fprintf(&sb, "bad Date %q\n", d)
		}
		fmt.Fprintf(&sb, "body %d bytes, sha256 %x: %.200q", len(body), sha256.Sum256(body), body)
		out = append(out, Response{Header: resp.Header, Text: sb.String()})
	}
	if rest, _ := io.ReadAll(br); len(rest) > 0 {
		out = append(out, Response{Text: fmt.Sprintf("trailing bytes: %.200q", rest)})
	}
	return out
}
