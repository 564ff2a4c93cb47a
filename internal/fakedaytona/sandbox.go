package fakedaytona

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/libra-deploy/libra-deploy/internal/fakesandbox"
)

// sandbox is one fake sandbox. Fields are guarded by the Fake's mutex,
// except a command's output, which has its own.
type sandbox struct {
	id       string
	state    string
	home     string
	env      map[string]string
	labels   map[string]string
	snapshot string
	startIn  int
	sessions map[string]*session
}

type session struct {
	commands map[string]*command
}

// command is one session command running (or ran) for real.
type command struct {
	id     string
	script string
	cmd    *exec.Cmd

	mu       sync.Mutex
	out      bytes.Buffer
	exitCode *int
}

func (c *command) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *command) snapshot() (string, *int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String(), c.exitCode
}

// start runs script with bash in home, with a minimal environment plus
// the sandbox's env: nothing of the test process leaks in.
func (c *command) start(home string, env map[string]string) error {
	c.cmd = exec.Command("bash", "-c", c.script)
	c.cmd.Dir = home
	c.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "npm_config_cache=" + filepath.Join(home, ".npm")}
	for k, v := range env {
		c.cmd.Env = append(c.cmd.Env, k+"="+v)
	}
	c.cmd.Stdout, c.cmd.Stderr = c, c
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		return err
	}
	go func() {
		err := c.cmd.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		c.mu.Lock()
		c.exitCode = &code
		c.mu.Unlock()
	}()
	return nil
}

// destroy stops every command and removes the home directory.
func (s *sandbox) destroy() {
	if s.state == "destroyed" {
		return
	}
	s.state = "destroyed"
	for _, ss := range s.sessions {
		for _, c := range ss.commands {
			fakesandbox.Kill(c.cmd)
		}
	}
	_ = os.RemoveAll(s.home)
}

// resolve maps a sandbox path onto the home directory.
func (s *sandbox) resolve(p string) (string, bool) { return fakesandbox.Resolve(s.home, p) }
