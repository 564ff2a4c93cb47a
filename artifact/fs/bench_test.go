package fs

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"
)

// BenchmarkPut stores blobs from many goroutines at once, as POST /deploy
// does (8 writers per request, several requests): new content, whose cost
// is the group commit's flushes, and content already stored, which must
// still wait for its name to be durable.
func BenchmarkPut(b *testing.B) {
	for _, bc := range []struct {
		name      string
		duplicate bool
	}{{"new", false}, {"duplicate", true}} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := New(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			var seq atomic.Int64
			b.SetBytes(64 << 10)
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				content := make([]byte, 64<<10)
				for pb.Next() {
					if !bc.duplicate {
						binary.LittleEndian.PutUint64(content, uint64(seq.Add(1)))
					}
					if _, _, err := s.Put(context.Background(), bytes.NewReader(content)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
