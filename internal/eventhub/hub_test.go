package eventhub

import (
	"testing"
	"time"
)

func TestHub(t *testing.T) {
	tests := []struct {
		name   string
		notify func(h *Hub)
		woken  bool
	}{
		{"own id", func(h *Hub) { h.Notify("a") }, true},
		{"other id", func(h *Hub) { h.Notify("b") }, false},
		{"all", func(h *Hub) { h.NotifyAll() }, true},
		{"coalesced", func(h *Hub) { h.Notify("a"); h.Notify("a"); h.Notify("a") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Hub
			ch, stop := h.Watch("a")
			defer stop()
			tt.notify(&h)
			select {
			case <-ch:
				if !tt.woken {
					t.Fatal("woken by another deployment's notification")
				}
			case <-time.After(50 * time.Millisecond):
				if tt.woken {
					t.Fatal("not woken")
				}
			}
			select {
			case <-ch:
				t.Fatal("a second wake-up: notifications must coalesce")
			default:
			}
		})
	}
}

func TestHubStopReleases(t *testing.T) {
	var h Hub
	_, stop1 := h.Watch("a")
	_, stop2 := h.Watch("a")
	if n := h.Followers(); n != 2 {
		t.Fatalf("followers = %d, want 2", n)
	}
	stop1()
	stop1() // twice is harmless
	stop2()
	if n := h.Followers(); n != 0 {
		t.Fatalf("followers = %d after stop, want 0", n)
	}
	h.Notify("a") // nobody left: must not panic or block
}
