package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/caddyserver/certmagic"

	libra "github.com/libra-deploy/libra-deploy"
	"github.com/libra-deploy/libra-deploy/internal/http1"
	"github.com/libra-deploy/libra-deploy/postgres"
	"github.com/libra-deploy/libra-deploy/tlsissuer"
)

// httpsConfig is the optional HTTPS listener with automatic certificates for
// verified custom domains. Off unless HTTPS_ADDR is set.
type httpsConfig struct {
	Addr      string
	Directory string
	Email     string
	CARoot    string
	// MaxHeaderBytes is MAX_HEADER_BYTES, as on the plain listener.
	MaxHeaderBytes int
	// WriteTimeout is serve's WRITE_TIMEOUT, for the same progress deadline
	// on HTTPS connections.
	WriteTimeout time.Duration
}

func loadHTTPSConfig() httpsConfig {
	return httpsConfig{
		Addr:      env("HTTPS_ADDR", ""),
		Directory: env("ACME_DIRECTORY", tlsissuer.LetsEncrypt),
		Email:     env("ACME_EMAIL", ""),
		CARoot:    env("ACME_CA_ROOT", ""),

		MaxHeaderBytes: envInt("MAX_HEADER_BYTES", defaultMaxHeaderBytes),
	}
}

// startHTTPS starts the HTTPS listener. It returns the handler the plain
// listener must use (it answers ACME HTTP-01 challenges first) and a function
// that stops the listener. With HTTPS off it returns handler unchanged.
func startHTTPS(hc httpsConfig, dataDir string, domains tlsissuer.VerifiedDomains, hosts *libra.HostPolicy, handler http.Handler, plainPort int, logger *slog.Logger) (http.Handler, func(context.Context), error) {
	if hc.Addr == "" {
		return handler, func(context.Context) {}, nil
	}
	ln, err := net.Listen("tcp", hc.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("https listen: %w", err)
	}
	storageDir, storage := certStorage(domains, dataDir, logger)
	cfg := tlsissuer.Config{
		StorageDir:   storageDir,
		Storage:      storage,
		DirectoryURL: hc.Directory,
		Email:        hc.Email,
		Allowed:      tlsissuer.AttachedDomains(domains, hosts),
		OrgOf:        tlsissuer.DomainOrg(domains),
		Logger:       logger,
		HTTPPort:     plainPort,
		TLSPort:      ln.Addr().(*net.TCPAddr).Port,
	}
	if hc.CARoot != "" {
		if cfg.RootCAs, err = tlsissuer.LoadRootCAs(hc.CARoot); err != nil {
			ln.Close()
			return nil, nil, err
		}
	}
	iss, err := tlsissuer.New(cfg)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	srv := &http.Server{
		Handler:   handler,
		TLSConfig: iss.TLSConfig(),
		// A timeout must be set: net/http clears the handshake deadline
		// only then, which a first handshake that waits for a new
		// certificate relies on.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    hc.MaxHeaderBytes,
		// Scanners send unknown names all day: their failed handshakes are
		// debug noise, not errors.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := srv.ServeTLS(http1.ProgressListener(ln, hc.WriteTimeout), "", ""); err != nil && err != http.ErrServerClosed {
			logger.Error("https server", "err", err)
		}
	}()
	logger.Info("https serving", "addr", ln.Addr().String(), "acme_directory", hc.Directory, "cert_storage", storageName(storage))
	return iss.HTTPChallengeHandler(handler), httpsStopper(srv, iss, storage, logger), nil
}

// httpsStopper returns the function that stops the listener, the issuer's
// renewals and, with shared storage, releases the locks of orders cut
// short, so that other nodes need not wait their TTL.
func httpsStopper(srv *http.Server, iss *tlsissuer.Issuer, storage certmagic.Storage, logger *slog.Logger) func(context.Context) {
	return func(ctx context.Context) {
		srv.Shutdown(ctx)
		iss.Close()
		if c, ok := storage.(io.Closer); ok {
			if err := c.Close(); err != nil {
				logger.Warn("release certificate locks", "err", err)
			}
		}
	}
}

// certStorage says where certificates, the ACME account, pending challenges
// and the locks around orders live. With POSTGRES_URL, in the shared
// database: every node then serves and renews what any node obtained,
// answers the HTTP-01 challenges of another node's order, and two nodes
// asked for one new domain place one order. Else in DATA_DIR/certs, as a
// single node always kept them.
func certStorage(state tlsissuer.VerifiedDomains, dataDir string, logger *slog.Logger) (dir string, shared certmagic.Storage) {
	if pg, ok := state.(*postgresState); ok {
		return "", postgres.NewCertStorage(pg.Pool, postgres.CertStorageOptions{Logger: logger})
	}
	return filepath.Join(dataDir, "certs"), nil
}

func storageName(shared certmagic.Storage) string {
	if shared != nil {
		return "postgres"
	}
	return "files"
}
