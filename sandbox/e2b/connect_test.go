package e2b

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// The bytes below are written out by hand from the Connect protocol's
// envelope definition: flag byte, 4-byte big-endian length, JSON.
func TestEnvelopeGoldenBytes(t *testing.T) {
	var buf bytes.Buffer
	req := startRequest{Process: processConfig{Cmd: "/bin/bash", Args: []string{"-c", "true"}}}
	if err := writeEnvelope(&buf, 0, req); err != nil {
		t.Fatal(err)
	}
	json := `{"process":{"cmd":"/bin/bash","args":["-c","true"]}}`
	want := "00" + "00000034" + hex.EncodeToString([]byte(json))
	if got := hex.EncodeToString(buf.Bytes()); got != want {
		t.Fatalf("envelope\n got %s\nwant %s", got, want)
	}
}

func TestProcessStreamGolden(t *testing.T) {
	// start, stdout "hi\n" (aGkK), stderr "oops" (b29wcw==), end with exit
	// code 3, then the end-of-stream envelope {}.
	frames := []struct {
		flag byte
		json string
	}{
		{0, `{"event":{"start":{"pid":42}}}`},
		{0, `{"event":{"data":{"stdout":"aGkK"}}}`},
		{0, `{"event":{"keepalive":{}}}`},
		{0, `{"event":{"data":{"stderr":"b29wcw=="}}}`},
		{0, `{"event":{"end":{"exitCode":3,"exited":true,"status":"exit status 3"}}}`},
		{2, `{}`},
	}
	var in bytes.Buffer
	for _, f := range frames {
		in.Write([]byte{f.flag, 0, 0, 0, byte(len(f.json))})
		in.WriteString(f.json)
	}
	var out bytes.Buffer
	code, err := readProcessStream(&in, &out)
	if err != nil || code != 3 || out.String() != "hi\noops" {
		t.Fatalf("code %d err %v output %q", code, err, out.String())
	}
}

func TestProcessStreamFailures(t *testing.T) {
	cases := []struct {
		name, stream, want string
	}{
		{"error at the end", "\x02\x00\x00\x00\x2e" + `{"error":{"code":"unavailable","message":"x"}}`, "unavailable: x"},
		{"no end event", "\x02\x00\x00\x00\x02{}", "ended before the process did"},
		{"cut mid-envelope", "\x00\x00\x00\x00\x10{\"eve", "truncated"},
		{"closed early", "", "ended before the process did"},
		{"compressed", "\x01\x00\x00\x00\x02{}", "compressed"},
	}
	for _, tc := range cases {
		_, err := readProcessStream(strings.NewReader(tc.stream), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestExitCodeZeroIsOmittedInJSON(t *testing.T) {
	// proto3 JSON leaves a zero exit code out: the end event still counts.
	in := "\x00\x00\x00\x00\x27" + `{"event":{"end":{"exited":true,"x":1}}}` + "\x02\x00\x00\x00\x02{}"
	code, err := readProcessStream(strings.NewReader(in), &bytes.Buffer{})
	if err != nil || code != 0 {
		t.Fatalf("code %d err %v", code, err)
	}
}
