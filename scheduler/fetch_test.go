package scheduler_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/internal/natstest"
	"github.com/lanternfarm/lantern/internal/netguard"
	"github.com/lanternfarm/lantern/natsq"
)

// newFetchFarm starts a farm whose scheduler fetches as policy allows.
func newFetchFarm(t *testing.T, policy netguard.Policy) *farm {
	t.Helper()
	f := &farm{t: t, dir: t.TempDir(), fetch: policy}
	f.log = natstest.WatchPermissions(t, testLogger(t))
	f.nats = natstest.StartIn(t, filepath.Join(f.dir, "farm"), -1)
	f.startScheduler()
	return f
}

// fetchClaim signs a claim of a source named name whose fetch URL is url.
func fetchClaim(t *testing.T, name, url string) []byte {
	t.Helper()
	c := &lantern.SourceClaim{
		Source: lantern.Source{Name: name, Version: "v1.0.0", Digest: lantern.DigestOf([]byte(name))},
		Recipe: "go", Fetch: url, Time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
	}
	return signed(t, claimKey, c)
}

// TestClaimFetchRefused: a claim whose fetch URL points where the farm does
// not fetch from is refused when it arrives, through the API with a 422
// saying why, and over NATS, where it is dropped; nothing of it is stored,
// and the loopback listener it aims at sees nothing. The farm allows http
// and one address, 127.0.0.2, as a farm with a private mirror would.
func TestClaimFetchRefused(t *testing.T) {
	var requests atomic.Int64
	secret := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.Write([]byte("secret"))
	}))
	defer secret.Close()
	port := strconv.Itoa(secret.Listener.Addr().(*net.TCPAddr).Port)
	at := func(host string) string { return "http://" + net.JoinHostPort(host, port) + "/hello-1.0.tar.gz" }

	f := newFetchFarm(t, netguard.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	tests := []struct{ name, url, says string }{
		{"loopback", at("127.0.0.1"), "127.0.0.1 is loopback"},
		{"IPv6 loopback", at("::1"), "::1 is loopback"},
		{"IPv4-mapped loopback", at("::ffff:127.0.0.1"), "is loopback"},
		{"cloud metadata", "http://169.254.169.254/latest/meta-data/iam/security-credentials/", "169.254.169.254 is link-local"},
		{"a file", "file:///etc/passwd", `scheme "file"`},
		{"gopher", "gopher://127.0.0.1:6379/_FLUSHALL", `scheme "gopher"`},
		{"localhost", at("localhost"), `host "localhost" is this machine`},
		{"the unspecified address", at("0.0.0.0"), "unspecified"},
		{"a private address", "https://10.0.0.1/hello-1.0.tar.gz", "private"},
		{"a numeric host", "http://2130706433/hello-1.0.tar.gz", "numeric form"},
		{"credentials", "https://user:secret@example.org/hello-1.0.tar.gz", "user information"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e struct{ Error, Fix string }
			code := f.do("POST", "/api/v1/claims", fetchClaim(t, sourceName(tt.name), tt.url), &e)
			if code != http.StatusUnprocessableEntity || !strings.Contains(e.Error, tt.says) || !strings.Contains(e.Fix, "--allow-private-fetch") {
				t.Errorf("POST claim fetching %s = %d %+v, want 422 saying %q, with a fix", tt.url, code, e, tt.says)
			}
		})
	}
	// What the farm allows is accepted: the refusals are the URLs'. A name
	// is not resolved when the claim arrives; the worker checks what it
	// resolves to (worker.TestGenericFetchContained).
	for i, url := range []string{at("127.0.0.2"), "https://example.org/hello-1.0.tar.gz", at("mirror.example.org")} {
		if code := f.do("POST", "/api/v1/claims", fetchClaim(t, sourceName("allowed "+strconv.Itoa(i)), url), nil); code != http.StatusAccepted {
			t.Errorf("POST claim fetching %s = %d, want 202", url, code)
		}
	}

	// Over NATS: a refused claim is dropped, the next one is taken.
	c := f.claimant()
	if err := c.PublishClaim(t.Context(), fetchClaim(t, "example.org/over-nats", at("127.0.0.1"))); err != nil {
		t.Fatal(err)
	}
	if err := c.PublishClaim(t.Context(), fetchClaim(t, "example.org/after", "https://example.org/after.tar.gz")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the claim after the refused one", func() bool {
		return f.do("GET", "/api/v1/sources/example.org/after@v1.0.0", nil, nil) == http.StatusOK
	})

	for _, tt := range append(tests, struct{ name, url, says string }{"over-nats", "", ""}) {
		if code := f.do("GET", "/api/v1/sources/"+sourceName(tt.name)+"@v1.0.0", nil, nil); code != http.StatusNotFound {
			t.Errorf("GET source %s = %d, want 404: a refused claim is not stored", sourceName(tt.name), code)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the loopback listener got %d requests, want none", n)
	}

	// A farm that does not allow http refuses it, to any host.
	strict := newFarm(t, natsq.Config{})
	var e struct{ Error, Fix string }
	code := strict.do("POST", "/api/v1/claims", fetchClaim(t, "example.org/plain", "http://example.org/hello-1.0.tar.gz"), &e)
	if code != http.StatusUnprocessableEntity || !strings.Contains(e.Error, "want https, or allow http with --allow-http-fetch") {
		t.Errorf("POST claim fetching over http from a strict farm = %d %+v, want 422 saying http is refused", code, e)
	}
}

func sourceName(what string) string { return "example.org/" + strings.ReplaceAll(what, " ", "-") }
