package fakee2b

import (
	"os"
	"os/exec"
	"time"

	"github.com/libra-deploy/libra-deploy/internal/fakesandbox"
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
		fakesandbox.Kill(c)
	}
	_ = os.RemoveAll(s.home)
}

// resolve maps a sandbox path onto the home directory.
func (s *sandbox) resolve(p string) (string, bool) { return fakesandbox.Resolve(s.home, p) }
