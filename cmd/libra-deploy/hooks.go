package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	libra "github.com/libra-deploy/libra-deploy"
)

// testHooks parses LIBRA_TEST_HOOKS, which lets the end-to-end tests slow a
// step or make it fail while driving the real binary. The steps themselves
// are untouched: the hook runs before a step, and its error is the step's.
// Rules, comma-separated, each STEP:ACTION[:ARG]:
//
//	build:sleep:2s      sleep before the step
//	sync:transient:2    fail as a platform fault on the first 2 attempts
//	sync:transient      fail as a platform fault on every attempt
//	build:permanent     fail as the user's fault
//
// A project id may narrow a rule: "build@slowproject:sleep:2s".
func testHooks(spec string) (func(ctx context.Context, d *libra.Deployment, step libra.Step) error, error) {
	type rule struct {
		step    libra.Step
		project string
		action  string
		sleep   time.Duration
		times   int
	}
	var rules []rule
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f := strings.Split(part, ":")
		if len(f) < 2 {
			return nil, fmt.Errorf("test hook %q: want STEP:ACTION[:ARG]", part)
		}
		r := rule{action: f[1]}
		step, project, _ := strings.Cut(f[0], "@")
		r.step, r.project = libra.Step(step), project
		switch r.action {
		case "sleep":
			if len(f) != 3 {
				return nil, fmt.Errorf("test hook %q: sleep needs a duration", part)
			}
			d, err := time.ParseDuration(f[2])
			if err != nil {
				return nil, fmt.Errorf("test hook %q: %w", part, err)
			}
			r.sleep = d
		case "transient":
			r.times = 1 << 30
			if len(f) == 3 {
				n, err := strconv.Atoi(f[2])
				if err != nil {
					return nil, fmt.Errorf("test hook %q: %w", part, err)
				}
				r.times = n
			}
		case "permanent":
		default:
			return nil, fmt.Errorf("test hook %q: unknown action %q", part, r.action)
		}
		rules = append(rules, r)
	}
	if len(rules) == 0 {
		return nil, nil
	}
	return func(ctx context.Context, d *libra.Deployment, step libra.Step) error {
		for _, r := range rules {
			if r.step != step || (r.project != "" && r.project != d.ProjectID) {
				continue
			}
			switch r.action {
			case "sleep":
				select {
				case <-time.After(r.sleep):
				case <-ctx.Done():
					return ctx.Err()
				}
			case "transient":
				if d.Attempt <= r.times {
					return errors.New("injected platform fault (LIBRA_TEST_HOOKS)")
				}
			case "permanent":
				return libra.Permanent(libra.Errorf(libra.CodeValidation, "injected permanent failure (LIBRA_TEST_HOOKS)"))
			}
		}
		return nil
	}, nil
}
