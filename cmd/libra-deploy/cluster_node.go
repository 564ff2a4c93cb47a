package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// nodeStartLimit bounds a node's start: migrations and the sandbox
// self-check take seconds, not minutes.
const nodeStartLimit = 2 * time.Minute

// nodeStopLimit is how long a node gets after SIGTERM before SIGKILL: its
// own shutdown grace (the nodes inherit SHUTDOWN_GRACE_MS) plus a margin
// for closing the queue and the database.
func nodeStopLimit() time.Duration {
	return time.Duration(envInt("SHUTDOWN_GRACE_MS", 10000))*time.Millisecond + 30*time.Second
}

// clusterNode is one `libra-deploy serve` child of the cluster command.
type clusterNode struct {
	index   int
	id      string
	url     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error // the exit's error, once exited is closed
}

// startNode starts node i with its own data directory, sandbox root, port
// and NODE_ID, on the shared database and bucket, and waits until it
// listens. A node that started but failed is returned too, to be stopped.
func (lc *localCluster) startNode(i int) (*clusterNode, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program: %w", err)
	}
	n := &clusterNode{index: i, id: fmt.Sprintf("node%d-%s", i, randomHex(3)), exited: make(chan struct{}),
		logPath: filepath.Join(lc.dir, "logs", fmt.Sprintf("node%d.log", i))}
	dataDir := filepath.Join(lc.dir, fmt.Sprintf("node%d", i))
	n.cmd = exec.Command(exe, "serve", "--addr", lc.nodeAddr(i), "--data-dir", dataDir)
	key, err := clusterSecretKey(lc.dir)
	if err != nil {
		return nil, err
	}
	n.cmd.Env = append(filteredEnv(), lc.s3Env...)
	n.cmd.Env = append(n.cmd.Env, secretKeyVar+"="+key)
	n.cmd.Env = append(n.cmd.Env, "POSTGRES_URL="+lc.dbURL, "NODE_ID="+n.id,
		"SANDBOX_ROOT="+filepath.Join(lc.dir, fmt.Sprintf("node%d-sandbox", i)))
	// A node must not outlive the cluster command, however that one ends;
	// SIGTERM, so that it still hands back its jobs and removes its cgroups.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	url, err := n.start()
	if err != nil {
		return n, fmt.Errorf("node %d: %w (log: %s)", i, err, n.logPath)
	}
	n.url = url
	return n, nil
}

func (lc *localCluster) nodeAddr(i int) string {
	if lc.opts.basePort == 0 {
		return "127.0.0.1:0"
	}
	return fmt.Sprintf("127.0.0.1:%d", lc.opts.basePort+i-1)
}

// start runs the process, its output going to its log file, and returns
// the URL it announces.
func (n *clusterNode) start() (string, error) {
	logFile, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("open log: %w", err)
	}
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return "", err
	}
	n.cmd.Stderr = logFile
	if err := n.cmd.Start(); err != nil {
		logFile.Close()
		return "", fmt.Errorf("start serve: %w", err)
	}
	urls := make(chan string, 1)
	copied := make(chan struct{})
	go func() { scanListening(stdout, logFile, urls); close(copied) }()
	go func() {
		<-copied // Wait closes the pipe: read it all first
		n.err = n.cmd.Wait()
		logFile.Close()
		close(n.exited)
	}()
	return n.awaitURL(urls)
}

func (n *clusterNode) awaitURL(urls <-chan string) (string, error) {
	select {
	case u := <-urls:
		return u, nil
	case <-n.exited:
		return "", fmt.Errorf("serve exited at start: %v", n.err)
	case <-time.After(nodeStartLimit):
		return "", errors.New("serve did not listen within " + nodeStartLimit.String())
	}
}

// stopNodes sends every node SIGTERM at once, then waits for each; one
// that outstays nodeStopLimit is killed.
func (lc *localCluster) stopNodes() []error {
	for _, n := range lc.nodes {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
	}
	limit := nodeStopLimit()
	deadline := time.Now().Add(limit)
	var errs []error
	for _, n := range lc.nodes {
		select {
		case <-n.exited:
		case <-time.After(time.Until(deadline)):
			_ = n.cmd.Process.Kill()
			<-n.exited
			errs = append(errs, fmt.Errorf("node %d did not stop within %s: killed", n.index, limit))
		}
	}
	return errs
}
