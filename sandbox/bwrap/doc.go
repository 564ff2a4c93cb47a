// Package bwrap is the "local" sandbox provider: it runs untrusted install and
// build commands under bubblewrap on this host.
//
// Each sandbox gets:
//
//   - its own unprivileged host uid, taken from a fixed pool (one uid per
//     concurrent build), so that a build's files and processes can never be
//     confused with the service's or another build's;
//   - a fresh mount, pid, network, ipc, uts and user namespace from bwrap,
//     with /usr read-only, a handful of generated or read-only /etc files, a
//     size-capped /tmp, and only the project, a private home and an optional
//     per-org cache writable;
//   - a cgroup (v1 or v2) holding memory and pids limits, which is also how a
//     whole process tree is killed at once;
//   - rlimits (file size, CPU time, open files, no core dumps) set on bwrap's
//     processes before they start the command, and a seccomp deny list;
//   - no network at all, except that during the install phase a proxy on the
//     host (see Proxy) is reachable through a unix socket, which only lets
//     through connections to allow-listed hosts on public addresses.
//
// The service binary must dispatch the hidden subcommand HelperCommand to
// HelperMain before doing anything else: the provider binds a copy of the
// binary into every sandbox and runs it there as a tiny init that reports a
// successful start and, in the install phase, relays the proxy.
package bwrap
