package http1

import (
	"bufio"
	"net"
	"net/http"
	"testing"

	"github.com/libra-deploy/libra-deploy/internal/metrics"
)

// BenchmarkKeepAlive measures one GET on a keep-alive connection, client
// included, through the fast loop and through net/http alone; allocs/op
// are the server's and the client's together.
func BenchmarkKeepAlive(b *testing.B) {
	body := []byte("<html><body>hi</body></html>\n")
	// Header values made once, as the site host does.
	contentType, contentLength := []string{"text/html; charset=utf-8"}, []string{"29"}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr["Content-Type"] = contentType
		hdr["Content-Length"] = contentLength
		w.Write(body)
	})
	for _, v := range []struct {
		name    string
		fast    bool
		counted bool // responses counted into the metrics, as serve does
	}{{"http1", true, false}, {"http1-metrics", true, true}, {"net-http", false, false}} {
		fast := v.fast
		b.Run(v.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &Server{HTTP: &http.Server{Handler: h}, Fast: func(*http.Request) bool { return true }, Disabled: !fast}
			if v.counted {
				srv.Served = metrics.SiteServed
			}
			go srv.Serve(ln)
			defer srv.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := []byte("GET / HTTP/1.1\r\nHost: example.test\r\nAccept-Encoding: gzip, br\r\n\r\n")
			br := bufio.NewReader(c)
			resp := make([]byte, 0, 512)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				// The response ends with the 29-byte body; read up to it.
				resp = resp[:0]
				for len(resp) < 29 || string(resp[len(resp)-29:]) != string(body) {
					line, err := br.ReadSlice('\n')
					if err != nil {
						b.Fatal(err)
					}
					resp = append(resp, line...)
				}
			}
			b.StopTimer()
		})
	}
}
