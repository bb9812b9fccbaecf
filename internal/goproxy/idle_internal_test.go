package goproxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type noChecker struct{}

func (noChecker) Sum(modPath, version string) (string, error) {
	panic("the checksum database is not asked before the proxy answers")
}

// TestProxyThatStops: a proxy that holds its answer, or sends a byte of it
// and stops, fails the resolution once it has sent nothing for
// idleTimeout, instead of holding lantern rebuild forever.
func TestProxyThatStops(t *testing.T) {
	old := idleTimeout
	idleTimeout = 50 * time.Millisecond
	t.Cleanup(func() { idleTimeout = old })
	for name, head := range map[string]bool{"no head": false, "a byte of the body": true} {
		t.Run(name, func(t *testing.T) {
			release := make(chan struct{})
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if head {
					w.WriteHeader(http.StatusOK)
					w.Write([]byte("{"))
					w.(http.Flusher).Flush()
				}
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}))
			t.Cleanup(proxy.Close)
			t.Cleanup(func() { close(release) })
			r, err := NewResolver(proxy.URL, noChecker{}, nil, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				_, err := r.Resolve(t.Context(), "example.com/hello", "v1.0.0")
				errc <- err
			}()
			select {
			case err := <-errc:
				if err == nil || !strings.Contains(err.Error(), "nothing for 50ms") {
					t.Errorf("Resolve from a proxy that stops = %v, want an error saying it sent nothing for 50ms", err)
				}
			case <-time.After(2 * time.Minute): // far past 50ms
				t.Fatal("Resolve still waits for a proxy that stopped answering, two minutes on")
			}
		})
	}
}
