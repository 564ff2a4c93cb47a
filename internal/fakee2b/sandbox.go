package fakee2b

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// sandbox is one fake sandbox; fields are guarded by the Fake's mutex.
type sandbox struct {
	id, token, template string
	home                string
	timer               *time.Timer
	gone                bool
	procs               []*exec.Cmd
}

// destroy stops every process and removes the home directory.
func (s *sandbox) destroy() {
	if s.gone {
		return
	}
	s.gone = true
	if s.timer != nil {
		s.timer.Stop()
	}
	for _, c := range s.procs {
		if c.Process != nil {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		}
	}
	_ = os.RemoveAll(s.home)
}

// resolve maps a path onto the home directory, as envd resolves relative
// paths against the user's home; the fake never leaves home.
func (s *sandbox) resolve(p string) (string, bool) {
	if p == "" || filepath.IsAbs(p) {
		return "", false
	}
	clean := filepath.Clean(p)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", false
	}
	return filepath.Join(s.home, clean), true
}
