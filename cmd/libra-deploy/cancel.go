package main

import (
	"context"

	"github.com/libra-deploy/libra-deploy/workflow"
)

// startCancels makes the runner stop runs whose deployment's cancel is
// requested, on this node or another, and starts listening for requests;
// the returned func stops listening. Like startLeases, it must run before
// the queue starts.
func (s *service) startCancels(ctx context.Context) func() {
	c := &workflow.Cancels{Store: s.db, Logger: s.log}
	s.runner.Cancels = c
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Listen(ctx); err != nil {
			s.log.Warn("cancel requests: not listening; runs still poll for them", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}
