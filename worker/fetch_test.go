package worker_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/dnstest"
	"github.com/lanternfarm/lantern/internal/netguard"
	"github.com/lanternfarm/lantern/internal/ocitest"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/recipes"
	"github.com/lanternfarm/lantern/worker"
)

// countingServer serves h on addr and counts the requests it gets.
func countingServer(t *testing.T, addr string, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	})}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestGenericFetchContained: jobs whose source URL points at the worker's
// own loopback, its cloud's metadata service, a file, a name that resolves
// to loopback, or a mirror the worker may fetch from that redirects to
// loopback, are each signed as failed at the fetch stage, naming why, and
// the loopback listener sees no request. The farm's scheduler lets them all
// through (it allows private addresses and http), so that it is the
// worker's check that is tried: after DNS resolution and at the redirect.
// The worker allows http and one address, the mirror's on 127.0.0.1's
// neighbour 127.0.0.2, and resolves names with a DNS server on 127.0.0.1
// (evil.test → 127.0.0.1). Nothing here gets past the fetch but one source,
// on the mirror, which then fails its digest check: no BuildKit is needed.
func TestGenericFetchContained(t *testing.T) {
	secret, secretRequests := countingServer(t, "127.0.0.1:0", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("secret")) })
	sp := strconv.Itoa(int(secret.Listener.Addr().(*net.TCPAddr).Port))
	served := ocitest.TarGz(t, "hello-1.0", map[string]string{"greeting.txt": "hello, world\n"})
	mirror, mirrorRequests := countingServer(t, "127.0.0.2:0", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hello-1.0.tar.gz":
			w.Write(served)
		case "/to-loopback":
			http.Redirect(w, r, "http://127.0.0.1:"+sp+"/hello-1.0.tar.gz", http.StatusFound)
		case "/to-evil":
			http.Redirect(w, r, "http://evil.test:"+sp+"/hello-1.0.tar.gz", http.StatusMovedPermanently)
		default:
			http.NotFound(w, r)
		}
	})
	dns := dnstest.Start(t, map[string][]netip.Addr{"evil.test": {netip.MustParseAddr("127.0.0.1")}})
	policy := netguard.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, Resolver: dns.Resolver()}

	a := mustKey(t)
	f := newFarm(t, natsq.Config{}, a)
	// No BuildKit: no job here gets to the build.
	gb, err := worker.NewGenericBuilder(nil, recipes.Limits{}, logger(), worker.FetchPolicy(policy))
	if err != nil {
		t.Fatal(err)
	}
	f.startWorker(worker.Config{Key: a, Builders: map[string]worker.Builder{lantern.RecipeGeneric: gb}, Heartbeat: 2 * time.Second}, natsq.Config{})

	spec := &lantern.BuildSpec{Image: "127.0.0.1:1/busybox@sha256:" + strings.Repeat("0", 64), Commands: []string{"true"}, Outputs: map[string]string{"x": "x"}}
	now := time.Now().UTC().Truncate(time.Second)
	tests := []struct {
		name, url string
		stage     string
		says      []string
	}{
		{"loopback", "http://127.0.0.1:" + sp + "/hello-1.0.tar.gz", "fetch", []string{"127.0.0.1 is loopback"}},
		{"ipv6-loopback", "http://[::1]:" + sp + "/hello-1.0.tar.gz", "fetch", []string{"::1 is loopback"}},
		{"metadata", "http://169.254.169.254/latest/meta-data/", "fetch", []string{"169.254.169.254 is link-local"}},
		{"localhost", "http://localhost:" + sp + "/hello-1.0.tar.gz", "fetch", []string{`host "localhost" is this machine`}},
		{"resolves-to-loopback", "http://evil.test:" + sp + "/hello-1.0.tar.gz", "fetch", []string{`"http://evil.test:` + sp + `/hello-1.0.tar.gz": 127.0.0.1 is loopback`}},
		{"redirect-to-loopback", mirror.URL + "/to-loopback", "fetch", []string{mirror.URL + "/to-loopback redirected", `"http://127.0.0.1:` + sp + `/hello-1.0.tar.gz": 127.0.0.1 is loopback`}},
		{"redirect-to-resolves-to-loopback", mirror.URL + "/to-evil", "fetch", []string{mirror.URL + "/to-evil redirected", `"http://evil.test:` + sp + `/hello-1.0.tar.gz": 127.0.0.1 is loopback`}},
		// The control: a URL the worker may fetch from is fetched (and its
		// bytes are not the claimed ones).
		{"allowed-mirror", mirror.URL + "/hello-1.0.tar.gz", "verify-inputs", []string{"not the ones the source claim names"}},
	}
	jobs := map[string]lantern.Job{}
	for _, tt := range tests {
		jobs[tt.name] = f.claimSource(&lantern.SourceClaim{
			// A digest of its own: the job id hashes it, not the name.
			Source: lantern.Source{Name: tt.name, Version: "1.0", Digest: lantern.DigestOf([]byte(tt.name))},
			Fetch:  tt.url, Recipe: lantern.RecipeGeneric, Build: spec, Time: now,
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := jobs[tt.name]
			eventually(t, "the signed failure of "+tt.name, func() bool { return len(f.source(job).Attestations) == 1 })
			fl, ok := f.claimOf(t, f.attestations(job)[0], a).(*lantern.RebuildFailure)
			if !ok || fl.Stage != tt.stage {
				t.Fatalf("%s: %+v, want a signed failure at %s", tt.url, fl, tt.stage)
			}
			for _, s := range tt.says {
				if !strings.Contains(fl.Reason, s) {
					t.Errorf("%s: reason %q, want it to say %q", tt.url, fl.Reason, s)
				}
			}
		})
	}

	// A scheme the scheduler refuses gets no further at the worker.
	_, err = gb.Build(t.Context(), lantern.Job{ID: "jfile", Source: lantern.Source{Name: "file", Version: "1", Digest: lantern.DigestOf([]byte("file"))},
		Recipe: lantern.RecipeGeneric, Fetch: "file:///etc/passwd", Build: spec}, t.TempDir(), new(strings.Builder))
	var be *worker.BuildError
	if !errors.As(err, &be) || be.Stage != "fetch" || !errors.Is(err, netguard.ErrRefused) || !strings.Contains(err.Error(), `scheme "file"`) {
		t.Errorf("Build of file:///etc/passwd = %v, want a BuildError at fetch refusing the scheme", err)
	}

	if n := secretRequests.Load(); n != 0 {
		t.Errorf("the loopback listener got %d requests, want none", n)
	}
	if n := mirrorRequests.Load(); n != 3 {
		t.Errorf("the mirror got %d requests, want 3: the allowed source and the two redirects", n)
	}
	if dns.Queries("evil.test") == 0 {
		t.Errorf("evil.test was never looked up: its refusal was not after DNS")
	}
}
