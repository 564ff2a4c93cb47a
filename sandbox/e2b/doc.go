// Package e2b runs builds in E2B sandboxes: the control-plane REST API
// creates a sandbox with an explicit timeout (extended while a build runs)
// and kills it; the in-sandbox daemon envd takes files on /files and runs
// commands through its Connect-protocol process service
// (process.Process/Start, a server stream of application/connect+json
// envelopes).
//
// The Connect client is a small one of our own (connect.go, with
// golden-byte tests of the framing) rather than connectrpc.com/connect with
// generated code: we call one server-streaming method with JSON, which
// needs a few dozen lines, not a protobuf toolchain.
//
// CPU and memory are properties of an E2B template, not of a sandbox:
// choose them with E2B_TEMPLATE.
package e2b
