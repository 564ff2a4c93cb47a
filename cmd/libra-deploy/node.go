package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// nodeIDPattern keeps a node id usable as it is in a log line, a file name
// and a database key: a host name fits it. At most 100 bytes: it is also
// River's client id (River's limit), which the lease reaper matches against
// the nodes' heartbeats.
var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// defaultNodeID is the host name plus a random suffix: two instances on one
// host, or one instance and its restart, never share an id, so whatever a
// node claims under its id (uid slots today; heartbeats and leases in
// cluster mode) cannot be mistaken for another's.
func defaultNodeID() string {
	host, err := os.Hostname()
	host = strings.Trim(nodeIDUnsafe.ReplaceAllString(host, "-"), "-._")
	if err != nil || host == "" {
		host = "node"
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return fmt.Sprintf("%.90s-%s", host, hex.EncodeToString(b[:]))
}

var nodeIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func validateNodeID(id string) error {
	if !nodeIDPattern.MatchString(id) {
		return fmt.Errorf("NODE_ID %q: want 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit", id)
	}
	return nil
}
