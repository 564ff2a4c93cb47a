package main

import (
	"net/http"
	"os"
	"sync"
	"time"
)

// streamStop ends the API's event streams when the HTTP server starts
// shutting down: http.Server.Shutdown waits for requests to finish, and a
// stream would otherwise hold the shutdown for its whole grace period.
type streamStop struct {
	stopping chan struct{}
	stop     func()
}

func newStreamStop() *streamStop {
	ch := make(chan struct{})
	return &streamStop{stopping: ch, stop: sync.OnceFunc(func() { close(ch) })}
}

// register makes srv's Shutdown end the streams, and returns srv.
func (st *streamStop) register(srv *http.Server) *http.Server {
	srv.RegisterOnShutdown(st.stop)
	return srv
}

// eventsKeepAlive is the SSE keep-alive period: 15 s, or EVENTS_KEEPALIVE
// (a Go duration), a knob for tests that is deliberately not documented.
func eventsKeepAlive() time.Duration {
	d, err := time.ParseDuration(os.Getenv("EVENTS_KEEPALIVE"))
	if err != nil || d <= 0 {
		return 15 * time.Second
	}
	return d
}
