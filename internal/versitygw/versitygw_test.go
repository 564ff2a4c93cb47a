package versitygw_test

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/versitygw"
)

func binary(t *testing.T) string {
	t.Helper()
	bin, err := versitygw.Binary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return bin
}

// Nowhere to be found: the error names the install command.
func TestBinaryMissingSaysHowToInstall(t *testing.T) {
	t.Setenv("VERSITYGW", "")
	t.Setenv("PATH", t.TempDir())
	t.Setenv("GOPATH", t.TempDir())
	_, err := versitygw.Binary()
	if !errors.Is(err, versitygw.ErrNotFound) || !strings.Contains(err.Error(), "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0") {
		t.Fatalf("Binary without versitygw: %v", err)
	}
}

// Start returns once the server listens; Stop leaves no process.
func TestStartListensAndStopEnds(t *testing.T) {
	bin := binary(t)
	port, err := versitygw.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s, err := versitygw.Start(versitygw.Options{Bin: bin, Dir: t.TempDir(), Addr: "127.0.0.1:" + port,
		Region: "us-east-1", AccessKey: "test", SecretKey: "testsecret"})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatalf("after Start nothing listens on %s: %v", port, err)
	}
	conn.Close()
	pid := s.PID()
	s.Stop()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("versitygw %d after Stop: %v", pid, err)
	}
}

// A port already taken: Start fails instead of waiting out its limit.
func TestStartOnTakenPortFails(t *testing.T) {
	bin := binary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = versitygw.Start(versitygw.Options{Bin: bin, Dir: t.TempDir(), Addr: ln.Addr().String(),
		Region: "us-east-1", AccessKey: "test", SecretKey: "testsecret"})
	if err == nil {
		t.Fatal("Start on a taken port succeeded")
	}
	t.Logf("Start on a taken port: %v", err)
}
