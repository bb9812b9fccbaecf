package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestPostClaimFarmThatHangs: a farm that takes the claim and never
// answers, or answers with a body that never ends, does not hold the post
// past postTime.
func TestPostClaimFarmThatHangs(t *testing.T) {
	old := postTime
	postTime = 500 * time.Millisecond
	t.Cleanup(func() { postTime = old })
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	for _, tc := range []struct {
		name, want string
		h          http.HandlerFunc
	}{
		{"no answer", "did not answer within", func(w http.ResponseWriter, r *http.Request) { <-release }},
		{"an endless answer", "did not finish its answer within", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte(`{"job":"`))
			w.(http.Flusher).Flush()
			<-release
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.h)
			t.Cleanup(srv.CloseClientConnections)
			done := make(chan error, 1)
			go func() {
				_, _, err := postClaim(t.Context(), srv.URL, []byte(`{}`))
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("postClaim = %v, want an error saying it %s", err, tc.want)
				}
			case <-time.After(time.Minute):
				t.Fatal("postClaim still waiting a minute after its bound")
			}
		})
	}
}
