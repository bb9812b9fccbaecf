package recipes_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/netguard"
	"github.com/lanternfarm/lantern/recipes"
)

// TestPrepareGenericRefusesLoopbackByDefault: without a client of its
// caller's, PrepareGeneric fetches as the strict netguard.Policy allows,
// and a tarball on 127.0.0.1 is not fetched.
func TestPrepareGenericRefusesLoopbackByDefault(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.Write([]byte("secret"))
	}))
	defer srv.Close()
	r, err := recipes.Load(lantern.RecipeGeneric)
	if err != nil {
		t.Fatal(err)
	}
	src := lantern.Source{Name: "hello", Version: "1.0", Digest: lantern.DigestOf([]byte("secret"))}
	spec := &lantern.BuildSpec{Image: "127.0.0.1:1/x@sha256:" + strings.Repeat("0", 64), Commands: []string{"true"}, Outputs: map[string]string{"x": "x"}}
	https := "https" + strings.TrimPrefix(srv.URL, "http")
	for url, says := range map[string]string{srv.URL + "/hello.tar.gz": "want https", https + "/hello.tar.gz": "127.0.0.1 is loopback"} {
		_, err = recipes.PrepareGeneric(t.Context(), r, src, url, spec, filepath.Join(t.TempDir(), "inputs"), recipes.GenericOptions{})
		if !errors.Is(err, netguard.ErrRefused) || !strings.Contains(err.Error(), says) {
			t.Errorf("PrepareGeneric(%s) = %v, want refused: %s", url, err, says)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the server on 127.0.0.1 got %d requests, want none", n)
	}
}
