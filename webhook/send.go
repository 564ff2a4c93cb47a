package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/netguard"
)

// AttemptTimeout bounds one attempt, connection to last byte.
const AttemptTimeout = 10 * time.Second

// maxResponseBody is how much of a receiver's answer is read: only its
// status matters, and a hostile receiver must not make us buffer much.
const maxResponseBody = 4 << 10

// maxErrorText caps what an attempt's error keeps of the answer.
const maxErrorText = 256

// MaxURLLength bounds an endpoint URL.
const MaxURLLength = 2048

// Sender makes delivery attempts.
type Sender struct {
	client *http.Client
	// AllowPrivate lets endpoints resolve to loopback and private
	// addresses (WEBHOOK_ALLOW_PRIVATE, for tests only).
	AllowPrivate bool
}

// NewSender returns a Sender whose dialer refuses private addresses unless
// allowPrivate: it checks the address it is about to connect to, after DNS,
// so a name that resolves differently at delivery than at creation gains
// nothing. Redirects are not followed, proxies from the environment are not
// used.
func NewSender(allowPrivate bool) *Sender {
	dialer := &net.Dialer{Timeout: AttemptTimeout}
	if !allowPrivate {
		dialer.Control = netguard.Control
	}
	transport := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   AttemptTimeout,
		ResponseHeaderTimeout: AttemptTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
	}
	return &Sender{AllowPrivate: allowPrivate, client: &http.Client{
		Transport:     transport,
		Timeout:       AttemptTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// CheckURL validates an endpoint URL when it is created: http or https,
// a host, no credentials, at most MaxURLLength, and (unless private
// addresses are allowed) a host that resolves only to public addresses.
func (s *Sender) CheckURL(ctx context.Context, raw string) error {
	if len(raw) > MaxURLLength {
		return fmt.Errorf("url is longer than %d bytes", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("url does not parse")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return errors.New("url must be http or https")
	}
	if u.Hostname() == "" || u.User != nil || u.Fragment != "" {
		return errors.New("url must have a host, and no user info or fragment")
	}
	if s.AllowPrivate {
		return nil
	}
	if err := netguard.CheckHost(ctx, u.Hostname()); err != nil {
		return fmt.Errorf("url host is not allowed: %w", err)
	}
	return nil
}

// Message is what one attempt sends.
type Message struct {
	URL, Secret, ID string
	Body            []byte
}

// Result is what one attempt got.
type Result struct {
	Code       int
	RetryAfter time.Duration
	Duration   time.Duration
	// Err is the transport error or a short account of a non-2xx answer.
	Err error
}

// OK reports a 2xx answer.
func (r Result) OK() bool { return r.Err == nil && r.Code >= 200 && r.Code < 300 }

// Send makes one signed attempt, stamped with the attempt's own time.
func (s *Sender) Send(ctx context.Context, m Message) Result {
	start := time.Now()
	res := s.send(ctx, m, start)
	res.Duration = time.Since(start)
	return res
}

func (s *Sender) send(ctx context.Context, m Message, now time.Time) Result {
	sig, err := Sign(m.Secret, m.ID, now, m.Body)
	if err != nil {
		return Result{Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		return Result{Err: fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "libra-deploy-webhooks")
	req.Header.Set("webhook-id", m.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := s.client.Do(req)
	if err != nil {
		return Result{Err: err}
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	res := Result{Code: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), now)}
	if !res.OK() {
		res.Err = fmt.Errorf("answered %d: %s", resp.StatusCode, shorten(string(text)))
	}
	return res
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func shorten(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxErrorText {
		s = s[:maxErrorText] + "..."
	}
	// The cut may split a character, and the answer may not be text.
	return strings.ToValidUTF8(s, "?")
}
