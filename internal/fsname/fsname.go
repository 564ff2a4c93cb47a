// Package fsname turns tenant ids into names of files and directories on the
// host. Every per-org (or per-project) name on disk comes from here, so that
// one rule decides whether two tenants can ever meet in one directory.
package fsname

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
)

// plain ids are used as they are, so that an operator can find a tenant's
// directory by its id. They cannot start with '.' (no ".", "..", hidden
// files) and never contain '=' or '/'.
var plain = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

// hashedPrefix starts every hashed name. No plain id can start with it, so a
// hashed name can never equal a plain one: an org whose id is "acme.com/x"
// and an org that picks the hash of that id as its own id get different
// directories.
const hashedPrefix = "="

// ID returns the on-disk name of a tenant id. It is injective: two different
// ids never share a name (plain ids map to themselves, every other id to
// "=" and its SHA-256, and the two ranges are disjoint). An empty id is
// hashed like any other.
func ID(id string) string {
	if plain.MatchString(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hashedPrefix + hex.EncodeToString(sum[:16])
}
