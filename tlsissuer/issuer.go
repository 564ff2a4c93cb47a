// Package tlsissuer gives the service HTTPS with certificates it obtains by
// itself over ACME (Let's Encrypt by default), on demand: the first TLS
// handshake for a custom domain obtains that domain's certificate, and only
// if the domain is attached to a project. It wraps certmagic.
//
// Why on demand: custom domains come and go with projects, so there is no
// list of names to obtain certificates for at start-up, and a certificate
// obtained at attach time would be wasted on a domain whose DNS never
// points here. The decision is asked of the database at handshake time
// instead, which is also what keeps a stranger from making the service
// request certificates for names of their choosing: an SNI value that is not
// an attached domain fails the handshake before anything is sent to the CA.
//
// Challenges: HTTP-01 is answered by HTTPChallengeHandler in front of the
// service's plain HTTP handler, TLS-ALPN-01 by the TLS configuration itself,
// so whichever of ports 80 and 443 reaches this process is enough.
// Certificates, keys and the ACME account live under Config.StorageDir and
// are reused after a restart; in cluster mode Config.Storage puts them, the
// pending challenges and the locks around orders in the shared database
// instead, so that every node serves what one obtained and answers the
// challenges of another's order.
package tlsissuer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"golang.org/x/time/rate"

	libra "github.com/libra-deploy/libra-deploy"
)

// LetsEncrypt is the default ACME directory: Let's Encrypt's production CA.
const LetsEncrypt = certmagic.LetsEncryptProductionCA

// ErrNotAttached is what AttachedDomains answers for a domain that no project
// has verified, or that is reserved: no certificate may be obtained for it.
var ErrNotAttached = errors.New("domain is not a verified custom domain of any project")

// Config configures an Issuer. Allowed and one of Storage and StorageDir
// are required.
type Config struct {
	// StorageDir holds certificates, their keys, the ACME account and
	// pending challenges; e.g. {data dir}/certs. Everything in it is
	// written 0600 in 0700 directories. Unused when Storage is set.
	StorageDir string
	// Storage, when set, holds all of the above instead, and provides
	// the locks certmagic takes around an order: shared by several
	// nodes (postgres.CertStorage), it makes them one ACME client.
	Storage certmagic.Storage
	// DirectoryURL is the ACME directory; default LetsEncrypt.
	DirectoryURL string
	// Email is the ACME account's contact; optional.
	Email string
	// RootCAs, when set, is the whole set of roots trusted for the ACME
	// server's own HTTPS (not for the certificates it issues). LoadRootCAs
	// builds the system roots plus a PEM file, for a private or test CA.
	RootCAs *x509.CertPool
	// Allowed decides whether a certificate may be obtained for a domain
	// (lower case, IDNs in punycode): nil means yes. It is asked on a
	// handshake for a name with no certificate in memory, before the
	// certificate is looked for on disk or asked of the CA, and again
	// before each renewal (on-demand certificates are renewed by the
	// handshakes that find them due), so a domain detached from its
	// project stops being renewed. AttachedDomains builds it from the
	// store.
	Allowed func(ctx context.Context, domain string) error
	Logger  *slog.Logger

	// HTTPPort and TLSPort are the ports of the local listeners that
	// serve HTTPChallengeHandler and TLSConfig; default 80 and 443. CAs
	// validate on ports 80 and 443 of the domain, so those must reach
	// these listeners, directly or forwarded. While a challenge is
	// pending, certmagic binds a port itself if nothing listens on it.
	HTTPPort, TLSPort int
	// DisableHTTP01 and DisableTLSALPN01 turn a challenge type off; by
	// default both are offered and the CA's choice is followed.
	DisableHTTP01, DisableTLSALPN01 bool
	// MaxObtainsPerHour bounds how many new certificates are ordered, in
	// a burst of up to 20; default 60. Renewals are not counted. Let's
	// Encrypt allows 300 new orders per account in 3 hours.
	MaxObtainsPerHour int
	// MaxObtainsPerOrgPerHour bounds the new certificates of one org's
	// domains, in a burst of up to 5; default 10. With it, one org
	// cannot spend MaxObtainsPerHour alone and starve the others.
	MaxObtainsPerOrgPerHour int
	// OrgOf names the org a domain's certificate is counted against;
	// nil counts every domain against one org. DomainOrg builds it from
	// the store.
	OrgOf func(ctx context.Context, domain string) (org string, err error)
}

// Issuer obtains, stores, serves and renews certificates on demand.
type Issuer struct {
	magic  *certmagic.Config
	acme   *certmagic.ACMEIssuer
	cache  *certmagic.Cache
	log    *slog.Logger
	allow  func(ctx context.Context, domain string) error
	orgOf  func(ctx context.Context, domain string) (string, error)
	limits *limits
	closed sync.Once
}

const (
	// decisionTimeout bounds one Allowed call: it runs inside a
	// handshake, and a database that does not answer must not hold
	// handshakes open.
	decisionTimeout = 5 * time.Second
	// slowHandshake is how long GetCertificate may take before the
	// handshake's deadline is pushed back; see getCertificate.
	slowHandshake = 100 * time.Millisecond
	// handshakeGrace is the time a handshake that waited for its
	// certificate gets to finish.
	handshakeGrace = 10 * time.Second
)

// New returns an Issuer. Close it to stop its background maintenance.
func New(cfg Config) (*Issuer, error) {
	if cfg.Allowed == nil {
		// On-demand issuance with no gate would order a certificate for
		// any name a client puts in its SNI.
		return nil, errors.New("tlsissuer: Allowed is required")
	}
	if cfg.DisableHTTP01 && cfg.DisableTLSALPN01 {
		return nil, errors.New("tlsissuer: at least one challenge type must be enabled")
	}
	storage, err := openStorage(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.DirectoryURL == "" {
		cfg.DirectoryURL = LetsEncrypt
	}
	if cfg.HTTPPort == 0 {
		cfg.HTTPPort = 80
	}
	if cfg.TLSPort == 0 {
		cfg.TLSPort = 443
	}
	if cfg.MaxObtainsPerHour <= 0 {
		cfg.MaxObtainsPerHour = 60
	}
	if cfg.MaxObtainsPerOrgPerHour <= 0 {
		cfg.MaxObtainsPerOrgPerHour = 10
	}
	if cfg.OrgOf == nil {
		cfg.OrgOf = func(context.Context, string) (string, error) { return "", nil }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("component", "tlsissuer")
	zl := zapLogger(log)

	i := &Issuer{
		log:   log,
		allow: cfg.Allowed,
		orgOf: cfg.OrgOf,
		limits: newLimits(rate.Limit(float64(cfg.MaxObtainsPerHour)/3600), min(20, cfg.MaxObtainsPerHour),
			rate.Limit(float64(cfg.MaxObtainsPerOrgPerHour)/3600), min(5, cfg.MaxObtainsPerOrgPerHour)),
	}
	// The cache asks which Config owns a certificate during its
	// maintenance; there is only one.
	i.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return i.magic, nil },
		Logger:           zl,
	})
	i.magic = certmagic.New(i.cache, certmagic.Config{
		Storage:  storage,
		OnDemand: &certmagic.OnDemandConfig{DecisionFunc: i.decide},
		OnEvent:  i.onEvent,
		Logger:   zl,
	})
	i.acme = certmagic.NewACMEIssuer(i.magic, certmagic.ACMEIssuer{
		CA:    cfg.DirectoryURL,
		Email: cfg.Email,
		// Turning HTTPS on is the operator's acceptance of the CA's
		// subscriber agreement: there is nobody to ask mid-handshake.
		Agreed:                  true,
		TrustedRoots:            cfg.RootCAs,
		AltHTTPPort:             cfg.HTTPPort,
		AltTLSALPNPort:          cfg.TLSPort,
		DisableHTTPChallenge:    cfg.DisableHTTP01,
		DisableTLSALPNChallenge: cfg.DisableTLSALPN01,
		Logger:                  zl,
	})
	i.magic.Issuers = []certmagic.Issuer{i.acme}
	return i, nil
}

// openStorage returns cfg.Storage or, without one, the files under
// cfg.StorageDir, which it creates.
func openStorage(cfg Config) (certmagic.Storage, error) {
	if cfg.Storage != nil {
		return cfg.Storage, nil
	}
	if cfg.StorageDir == "" {
		return nil, errors.New("tlsissuer: StorageDir or Storage is required")
	}
	if err := os.MkdirAll(cfg.StorageDir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsissuer: create storage directory: %w", err)
	}
	return &certmagic.FileStorage{Path: cfg.StorageDir}, nil
}

// Close stops background renewal; calling it again does nothing.
// Certificates on disk stay for the next Issuer on the same StorageDir.
func (i *Issuer) Close() error {
	i.closed.Do(i.cache.Stop)
	return nil
}

// TLSConfig returns the configuration of the HTTPS listener: certificates
// come from GetCertificate, obtained on the first handshake for an allowed
// name, and "acme-tls/1" is offered so that TLS-ALPN-01 validations reach
// it. It advertises h2 and http/1.1 for net/http.
//
// It is meant for a net/http Server with a timeout set (ReadHeaderTimeout
// is enough): such a server limits the handshake and clears the
// connection's deadlines after it, which the longer deadline given to a
// handshake that waited for issuance relies on.
func (i *Issuer) TLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: i.getCertificate,
		NextProtos:     []string{"h2", "http/1.1", "acme-tls/1"},
		MinVersion:     tls.VersionTLS12,
	}
}

// HTTPChallengeHandler answers the CA's HTTP-01 requests
// (/.well-known/acme-challenge/{token}) for the challenges this Issuer has
// pending, for the host name the challenge is for; everything else,
// including a site's own files under that path, goes to next.
func (i *Issuer) HTTPChallengeHandler(next http.Handler) http.Handler {
	return i.acme.HTTPChallengeHandler(next)
}

// AttachedDomains returns an Allowed function that permits exactly the
// verified custom domains of projects, and never a name hosts reserves (the
// API's own names, the sites domain and below, IPs, localhost), whatever
// the store holds. A pending domain is refused: its ownership is not
// proved, and a certificate for it would let its attacher serve HTTPS for
// a name that is not theirs. A lookup error denies (this handshake fails;
// the next one asks again).
func AttachedDomains(s VerifiedDomains, hosts *libra.HostPolicy) func(ctx context.Context, domain string) error {
	return func(ctx context.Context, domain string) error {
		if err := hosts.Reserved(domain); err != nil {
			return fmt.Errorf("%w: %s %v", ErrNotAttached, domain, err)
		}
		org, err := s.VerifiedDomainOrg(ctx, libra.NormalizeDomain(domain))
		if errors.Is(err, libra.ErrNotFound) || err == nil && org == "" {
			return ErrNotAttached
		}
		if err != nil {
			return fmt.Errorf("look up domain: %w", err)
		}
		return nil
	}
}

// DomainOrg returns a Config.OrgOf that asks the store.
func DomainOrg(s VerifiedDomains) func(ctx context.Context, domain string) (string, error) {
	return func(ctx context.Context, domain string) (string, error) {
		return s.VerifiedDomainOrg(ctx, libra.NormalizeDomain(domain))
	}
}

// VerifiedDomains is the part of libra.Store that AttachedDomains asks.
type VerifiedDomains interface {
	VerifiedDomainOrg(ctx context.Context, domain string) (orgID string, err error)
}

var _ VerifiedDomains = libra.Store(nil)

// LoadRootCAs returns the system's roots plus the certificates of a PEM
// file: the trust for an ACME server with a private CA (Pebble in tests, a
// step-ca inside a company) without losing the public ones.
func LoadRootCAs(pemFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	data, err := os.ReadFile(pemFile)
	if err != nil {
		return nil, fmt.Errorf("read ACME CA roots: %w", err)
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("read ACME CA roots: no PEM certificate in %s", pemFile)
	}
	return pool, nil
}

// decide is certmagic's on-demand DecisionFunc. Names that can never get a
// public certificate are refused before Allowed is asked, so that SNI
// values from scanners (IP addresses, "localhost", single labels) cost no
// database query.
func (i *Issuer) decide(ctx context.Context, name string) error {
	if !qualifies(name) {
		return fmt.Errorf("%q cannot have a public certificate", name)
	}
	ctx, cancel := context.WithTimeout(ctx, decisionTimeout)
	defer cancel()
	if err := i.allow(ctx, name); err != nil {
		i.log.Debug("certificate refused", "domain", name, "reason", err.Error())
		return err
	}
	return nil
}

func qualifies(name string) bool {
	return strings.Contains(name, ".") &&
		!strings.Contains(name, "*") &&
		!certmagic.SubjectIsIP(name) &&
		certmagic.SubjectQualifiesForPublicCert(name)
}

// getCertificate is the listener's GetCertificate. Around certmagic's it
// adds two things:
//
//   - a failed issuance fails the handshake at once. certmagic would retry
//     inside the handshake after one and two minutes, holding the client
//     and spending the CA's failed-validation allowance (Let's Encrypt:
//     five per name per hour); the name's backoff decides instead when
//     it is tried again.
//   - a handshake that waited for its certificate gets handshakeGrace to
//     finish. net/http starts the handshake's deadline (the server's
//     shortest timeout, often a few seconds) before GetCertificate runs, so
//     the first visitor of a new domain would otherwise get an error after
//     the certificate had been obtained.
func (i *Issuer) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	start := time.Now()
	ctx, hs := withHandshake(hello.Context())
	defer hs.cancel()
	cert, err := i.magic.GetCertificateWithContext(ctx, hello)
	if err != nil {
		if cause := hs.failure(); cause != nil {
			err = fmt.Errorf("obtain certificate for %s: %w", hello.ServerName, cause)
		}
		return nil, err
	}
	if hello.Conn != nil && time.Since(start) > slowHandshake {
		_ = hello.Conn.SetDeadline(time.Now().Add(handshakeGrace))
	}
	return cert, nil
}

// onEvent receives certmagic's events. An error returned for
// "cert_obtaining" stops that attempt before the CA is contacted.
func (i *Issuer) onEvent(ctx context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	switch event {
	case "cert_obtaining":
		if err := i.admit(ctx, name); err != nil {
			i.log.Warn("certificate not ordered", "domain", name, "reason", err.Error())
			// ErrNoRetry: certmagic would otherwise wait and try again
			// inside the handshake.
			return certmagic.ErrNoRetry{Err: err}
		}
	case "cert_failed":
		if renewal, _ := data["renewal"].(bool); renewal {
			return nil // certmagic schedules renewal retries itself
		}
		err, _ := data["error"].(error)
		wait := i.limits.failed(name, time.Now())
		i.log.Warn("certificate not obtained", "domain", name, "error", errString(err), "retry_after", wait.String())
		if hs := handshakeFrom(ctx); hs != nil {
			hs.fail(err)
		}
	case "cert_obtained":
		i.limits.succeeded(name)
		i.log.Info("certificate obtained", "domain", name, "renewal", data["renewal"])
	}
	return nil
}

// admit decides whether an order for name may be placed now, counting it
// against the org of the project the domain is attached to.
func (i *Issuer) admit(ctx context.Context, name string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, decisionTimeout)
	defer cancel()
	org, err := i.orgOf(ctx, name)
	if err != nil {
		return fmt.Errorf("look up the org of %s: %w", name, err)
	}
	return i.limits.admit(name, org, time.Now())
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
