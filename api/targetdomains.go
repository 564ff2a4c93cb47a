package api

import "context"

// addTargetStates adds the deploy target's view of each domain. The
// target answers within its own short timeout and never fails the listing:
// a domain it could not ask about says so in its own errors.
func (s *server) addTargetStates(ctx context.Context, projectID string, items []DomainItem) {
	if s.cfg.DomainStates == nil || len(items) == 0 {
		return
	}
	names := make([]string, len(items))
	for i := range items {
		names[i] = items[i].Domain
	}
	states := s.cfg.DomainStates(ctx, projectID, names)
	for i := range items {
		if st, ok := states[items[i].Domain]; ok {
			items[i].Target = &st
		}
	}
}
