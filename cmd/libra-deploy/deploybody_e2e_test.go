package main_test

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// bodyMiB is the size of each hostile or large body: most of the 50 MiB
// limit, as the security review sent.
const bodyMiB = 40

// amplifyingBody is a deployment whose history message carries an unknown
// field of tiny nested arrays, which the API accepts and ignores. Decoded
// into generic values every "0" became a 16-byte interface in a growing
// slice: one such body took the server to 1.17 GB.
func amplifyingBody(org, project string, topLevel bool) []byte {
	var b bytes.Buffer
	b.Grow(bodyMiB<<20 + 1024)
	fmt.Fprintf(&b, `{"projectId":%q,"orgId":%q,"userId":"user-%s",`, project, org, org)
	if topLevel {
		b.WriteString(`"x":`)
	} else {
		b.WriteString(`"historyMessages":[{"role":"user","content":"hi","attachments":`)
	}
	b.WriteString(`[[[[0`)
	for b.Len() < bodyMiB<<20 {
		b.WriteString(`,0,[0,[]],0`)
	}
	b.WriteString(`]]]]`)
	if !topLevel {
		b.WriteString(`}]`)
	}
	b.WriteString(`}`)
	return b.Bytes()
}

// largeFilesBody is a valid deployment of two ~20 MiB text files.
func largeFilesBody(org, project string) []byte {
	half := strings.Repeat("abcdefghij", (bodyMiB<<20)/20)
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"projectId":%q,"orgId":%q,"userId":"user-%s","initFiles":[`, project, org, org)
	fmt.Fprintf(&b, `{"path":"index.html","content":"<h1>big</h1>%s"},{"path":"b.txt","content":"%s"}]}`, half, half)
	return b.Bytes()
}

// peakRSSMiB is the process's high-water resident set (VmHWM).
func peakRSSMiB(t *testing.T, pid int) float64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%f", &kb); err != nil {
				t.Fatalf("parse VmHWM %q: %v", line, err)
			}
			return kb / 1024
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// TestDeployBodyMemoryBounded sends three ~40 MiB bodies at once, per kind,
// and checks that the server's peak memory stays a small multiple of what
// it was sent, while valid large deployments are still accepted.
func TestDeployBodyMemoryBounded(t *testing.T) {
	s := startServer(t)
	tok := s.setup("acme", "big")
	pid := s.cmd.Process.Pid
	if r := s.deploy(tok, staticSite("acme", "big", 3)); r.status != 202 {
		t.Fatalf("warm-up deploy: %d %s", r.status, r.body)
	}
	startMiB := peakRSSMiB(t, pid)
	t.Logf("peak RSS after start: %.0f MiB", startMiB)

	cases := []struct {
		name   string
		body   []byte
		status int
	}{
		{"nested arrays in an accepted unknown field", amplifyingBody("acme", "big", false), 202},
		{"nested arrays in a refused top-level field", amplifyingBody("acme", "big", true), 400},
		{"two 20 MiB files", largeFilesBody("acme", "big"), 202},
	}
	const concurrent = 3
	for _, c := range cases {
		var wg sync.WaitGroup
		got := make([]response, concurrent)
		for i := range concurrent {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i] = s.do("POST", "/deploy", c.body, "Authorization", "Bearer "+tok)
			}()
		}
		wg.Wait()
		for i, r := range got {
			if r.status != c.status {
				t.Errorf("%s, request %d: status %d, want %d: %.300s", c.name, i, r.status, c.status, r.body)
			}
		}
		t.Logf("%s: 3 x %.1f MiB bodies, peak RSS now %.0f MiB", c.name, float64(len(c.body))/(1<<20), peakRSSMiB(t, pid))
	}

	// Three bodies are 120 MiB; the server must hold them about once or
	// twice over, not build an object graph ten times their size.
	const limitMiB = 500
	if peak := peakRSSMiB(t, pid); peak > limitMiB {
		t.Errorf("peak RSS %.0f MiB, want under %d MiB for 3 concurrent %d MiB bodies", peak, limitMiB, bodyMiB)
	}
}
