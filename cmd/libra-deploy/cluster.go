package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	artifacts3 "github.com/libra-deploy/libra-deploy/artifact/s3"
	"github.com/libra-deploy/libra-deploy/internal/localpg"
	"github.com/libra-deploy/libra-deploy/internal/versitygw"
)

// clusterBucket and clusterDatabase are the names the local cluster gives
// its bucket and its database.
const (
	clusterBucket   = "libra"
	clusterDatabase = "libra"
	clusterRegion   = "us-east-1"
)

// clusterOptions are the cluster command's flags.
type clusterOptions struct {
	nodes    int
	basePort int    // node i listens on basePort+i-1; 0: free ports
	s3Port   int    // 0: a free port
	dir      string // empty: a temporary directory removed at the end
}

// localCluster is what `libra-deploy cluster` runs: PostgreSQL, versitygw
// and N serve processes, all children of this one, all under dir.
type localCluster struct {
	opts  clusterOptions
	dir   string
	pg    *localpg.Server
	s3    *versitygw.Server
	dbURL string
	s3Env []string
	nodes []*clusterNode
}

func runCluster(ctx context.Context, args []string, stdout io.Writer) error {
	opts, err := parseClusterFlags(args)
	if err != nil {
		return err
	}
	lc := &localCluster{opts: opts}
	if err := lc.start(ctx); err != nil {
		lc.stop(stdout)
		return err
	}
	lc.printSummary(stdout)
	lc.waitForSignal(ctx, stdout)
	return lc.stop(stdout)
}

func parseClusterFlags(args []string) (clusterOptions, error) {
	o := clusterOptions{}
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.IntVar(&o.nodes, "nodes", 3, "number of serve processes")
	fs.IntVar(&o.basePort, "base-port", 3101, "node i listens on 127.0.0.1:base-port+i-1 (0: free ports)")
	fs.IntVar(&o.s3Port, "s3-port", 0, "versitygw's port on 127.0.0.1 (0: a free port)")
	fs.StringVar(&o.dir, "dir", "", "keep PostgreSQL, the bucket, the nodes' data and the logs here (default: a temporary directory removed at the end)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.nodes < 1 || o.nodes > 16:
		return o, fmt.Errorf("--nodes %d: want 1 to 16", o.nodes)
	case o.basePort < 0 || o.basePort+o.nodes-1 > 65535:
		return o, fmt.Errorf("--base-port %d: the nodes' ports must lie in 1-65535", o.basePort)
	case o.s3Port < 0 || o.s3Port > 65535:
		return o, fmt.Errorf("--s3-port %d: want 0-65535", o.s3Port)
	}
	return o, nil
}

// start brings the parts up in dependency order; on an error, stop takes
// down whatever did start.
func (lc *localCluster) start(ctx context.Context) error {
	if err := lc.makeDir(); err != nil {
		return err
	}
	if err := lc.startPostgres(ctx); err != nil {
		return err
	}
	if err := lc.startS3(ctx); err != nil {
		return err
	}
	for i := 1; i <= lc.opts.nodes; i++ {
		n, err := lc.startNode(i)
		if n != nil {
			lc.nodes = append(lc.nodes, n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// makeDir makes the cluster's directory. PostgreSQL runs as the postgres
// user when we are root, so the directory must be traversable by it.
func (lc *localCluster) makeDir() error {
	var err error
	if lc.opts.dir == "" {
		lc.dir, err = os.MkdirTemp("", "libra-cluster-")
	} else {
		lc.dir, err = filepath.Abs(lc.opts.dir)
		if err == nil {
			err = os.MkdirAll(lc.dir, 0o711)
		}
	}
	if err != nil {
		return fmt.Errorf("cluster directory: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(lc.dir, "logs"), 0o755); err != nil {
		return fmt.Errorf("cluster logs directory: %w", err)
	}
	return os.Chmod(lc.dir, 0o711)
}

func (lc *localCluster) startPostgres(ctx context.Context) error {
	pg, err := localpg.Start(localpg.Options{
		Dir: filepath.Join(lc.dir, "pg"),
		// Each node keeps a pool and a LISTEN connection; 16 nodes fit.
		Settings: []string{"max_connections=400"},
	})
	if err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	lc.pg = pg
	if err := pg.EnsureDatabase(ctx, clusterDatabase); err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	lc.dbURL = pg.URL(clusterDatabase)
	return nil
}

// startS3 runs versitygw on its posix backend in dir/s3 with new root
// credentials, and creates the bucket the nodes share.
func (lc *localCluster) startS3(ctx context.Context) error {
	port := fmt.Sprint(lc.opts.s3Port)
	if lc.opts.s3Port == 0 {
		var err error
		if port, err = versitygw.FreePort(); err != nil {
			return err
		}
	}
	root := filepath.Join(lc.dir, "s3")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("versitygw's directory: %w", err)
	}
	logFile, err := os.OpenFile(filepath.Join(lc.dir, "logs", "versitygw.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("versitygw's log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor
	access, secret, err := lc.s3Credentials()
	if err != nil {
		return err
	}
	lc.s3, err = versitygw.Start(versitygw.Options{Dir: root, Addr: "127.0.0.1:" + port, Region: clusterRegion,
		AccessKey: access, SecretKey: secret, Output: logFile})
	if err != nil {
		return fmt.Errorf("S3 server: %w", err)
	}
	lc.s3Env = []string{"ARTIFACT_STORE=s3://" + clusterBucket, "S3_ENDPOINT=" + lc.s3.Endpoint,
		"S3_REGION=" + clusterRegion, "AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret}
	return lc.createBucket(ctx, access, secret)
}

// s3Credentials makes versitygw's root credentials. A kept --dir keeps
// them in a file beside the bucket: the bucket belongs to the key that
// made it, so a restart must come back with the same one.
func (lc *localCluster) s3Credentials() (access, secret string, err error) {
	path := filepath.Join(lc.dir, "s3-credentials")
	if b, err := os.ReadFile(path); err == nil {
		if a, s, ok := strings.Cut(strings.TrimSpace(string(b)), "\n"); ok && a != "" && s != "" {
			return a, s, nil
		}
	}
	access, secret = "libra"+randomHex(4), randomHex(20)
	if err := os.WriteFile(path, []byte(access+"\n"+secret+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("save S3 credentials: %w", err)
	}
	return access, secret, nil
}

func (lc *localCluster) createBucket(ctx context.Context, access, secret string) error {
	st, err := artifacts3.New(ctx, artifacts3.Options{Bucket: clusterBucket, Endpoint: lc.s3.Endpoint, Region: clusterRegion,
		AccessKeyID: access, SecretAccessKey: secret, TempDir: lc.dir})
	if err != nil {
		return fmt.Errorf("S3 client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = st.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws(clusterBucket)})
	var owned *s3types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) { // a kept --dir has it already
		return fmt.Errorf("create bucket %s: %w", clusterBucket, err)
	}
	return nil
}

func aws(s string) *string { return &s }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// printSummary tells the user where everything is. Scripts (and the test)
// read the "node N: URL" lines.
func (lc *localCluster) printSummary(w io.Writer) {
	fmt.Fprintf(w, "libra-deploy cluster: %d nodes on one PostgreSQL and one S3 bucket\n", len(lc.nodes))
	for _, n := range lc.nodes {
		fmt.Fprintf(w, "node %d: %s (NODE_ID %s, pid %d)\n", n.index, n.url, n.id, n.cmd.Process.Pid)
	}
	fmt.Fprintf(w, "postgres: %s\n", lc.dbURL)
	fmt.Fprintf(w, "s3: %s bucket %s (versitygw pid %d)\n", lc.s3.Endpoint, clusterBucket, lc.s3.PID())
	fmt.Fprintf(w, "dir: %s (logs in %s)\n", lc.dir, filepath.Join(lc.dir, "logs"))
	fmt.Fprintf(w, "\nCreate a token and a project against the shared database:\n")
	fmt.Fprintf(w, "  POSTGRES_URL='%s' libra-deploy token create --org ORG --user USER\n", lc.dbURL)
	fmt.Fprintf(w, "  POSTGRES_URL='%s' libra-deploy project create --org ORG --id PROJECT\n", lc.dbURL)
	fmt.Fprintf(w, "then deploy through any node; Ctrl-C stops everything.\n")
}

// waitForSignal waits for Ctrl-C or SIGTERM, reporting a node that exits
// before: the others keep serving (a cluster survives a lost node).
func (lc *localCluster) waitForSignal(ctx context.Context, w io.Writer) {
	exits := make(chan *clusterNode, len(lc.nodes))
	for _, n := range lc.nodes {
		go func() {
			select {
			case <-n.exited:
				exits <- n
			case <-ctx.Done():
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-exits:
			fmt.Fprintf(w, "node %d exited (%v); see %s\n", n.index, n.err, n.logPath)
		}
	}
}

// stop takes the parts down in reverse: the nodes first (they finish or
// hand back their deployments), then versitygw, then PostgreSQL; then it
// removes a temporary directory.
func (lc *localCluster) stop(w io.Writer) error {
	var errs []error
	errs = append(errs, lc.stopNodes()...)
	if lc.s3 != nil {
		lc.s3.Stop()
	}
	if lc.pg != nil {
		if err := lc.pg.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if lc.opts.dir == "" && lc.dir != "" {
		if err := os.RemoveAll(lc.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", lc.dir, err))
		}
	}
	fmt.Fprintln(w, "libra-deploy cluster: stopped")
	return errors.Join(errs...)
}

// filteredEnv is this process's environment without the settings the
// cluster gives each node itself: one inherited SANDBOX_CGROUP or
// SANDBOX_ROOT would be shared by every node, which must never happen.
func filteredEnv() []string {
	own := []string{"PORT", "DATA_DIR", "NODE_ID", "POSTGRES_URL", "ARTIFACT_STORE", "S3_ENDPOINT", "S3_REGION",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "SANDBOX_CGROUP", "SANDBOX_ROOT", "SANDBOX_UID_BASE"}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !containsString(own, name) {
			env = append(env, kv)
		}
	}
	return env
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// scanListening copies a node's stdout to its log and sends the URL of
// its "libra-deploy listening on" line once.
func scanListening(r io.Reader, log io.Writer, url chan<- string) {
	sc := bufio.NewScanner(r)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(log, line)
		if u, ok := strings.CutPrefix(line, "libra-deploy listening on "); ok && !sent {
			url <- u
			sent = true
		}
	}
	_, _ = io.Copy(log, r)
}
