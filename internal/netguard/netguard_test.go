package netguard

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lanternfarm/lantern/internal/dnstest"
)

func TestCheckAddr(t *testing.T) {
	mirror := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.5.0/24"), netip.MustParsePrefix("127.0.0.2/32")}}
	tests := []struct {
		addr    string
		policy  Policy
		refused string // "" if allowed
	}{
		// Public.
		{"8.8.8.8", Policy{}, ""},
		{"151.101.1.1", Policy{}, ""},
		{"2606:4700::1111", Policy{}, ""},
		{"64:ff9b::808:808", Policy{}, ""}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", Policy{}, ""},  // 6to4 of 8.8.8.8
		{"::ffff:8.8.8.8", Policy{}, ""},   // mapped
		{"100.63.255.255", Policy{}, ""},   // just below CGNAT
		{"100.128.0.0", Policy{}, ""},      // just above
		{"172.15.255.255", Policy{}, ""},   // just below 172.16/12
		{"172.32.0.0", Policy{}, ""},       // just above
		{"169.253.255.255", Policy{}, ""},  // just below link-local
		{"223.255.255.255", Policy{}, ""},  // just below multicast
		{"fbff:ffff::1", Policy{}, "outside 2000::/3"},

		// Loopback, private, shared, link-local: refused, unless allowed.
		{"127.0.0.1", Policy{}, "loopback"},
		{"127.255.255.254", Policy{}, "loopback"},
		{"::1", Policy{}, "loopback"},
		{"10.0.0.1", Policy{}, "private"},
		{"172.16.0.1", Policy{}, "private"},
		{"172.31.255.255", Policy{}, "private"},
		{"192.168.1.1", Policy{}, "private"},
		{"100.64.0.1", Policy{}, "carrier-grade NAT"},
		{"100.127.255.255", Policy{}, "carrier-grade NAT"},
		{"169.254.169.254", Policy{}, "link-local"},
		{"fe80::1", Policy{}, "link-local"},
		{"fe80::1%eth0", Policy{}, "link-local"},
		{"fd00:ec2::254", Policy{}, "unique local"},
		{"fc00::1", Policy{}, "unique local"},
		{"fec0::1", Policy{}, "site-local"},
		{"192.0.2.1", Policy{}, "documentation"},
		{"198.18.0.1", Policy{}, "benchmarking"},
		{"2001:db8::1", Policy{}, "documentation"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", Policy{}, "Teredo"},
		{"127.0.0.1", Policy{AllowPrivate: true}, ""},
		{"::1", Policy{AllowPrivate: true}, ""},
		{"169.254.169.254", Policy{AllowPrivate: true}, ""},
		{"10.0.0.1", Policy{AllowPrivate: true}, ""},

		// Never: unspecified, "this network", multicast, broadcast, reserved.
		{"0.0.0.0", Policy{}, "unspecified"},
		{"0.0.0.0", Policy{AllowPrivate: true}, "unspecified"},
		{"0.1.2.3", Policy{AllowPrivate: true}, "this network"},
		{"::", Policy{AllowPrivate: true}, "unspecified"},
		{"224.0.0.1", Policy{AllowPrivate: true}, "multicast"},
		{"239.255.255.250", Policy{}, "multicast"},
		{"ff02::1", Policy{AllowPrivate: true}, "multicast"},
		{"255.255.255.255", Policy{AllowPrivate: true}, "broadcast"},
		{"240.0.0.1", Policy{AllowPrivate: true}, "reserved"},
		{"100::1", Policy{AllowPrivate: true}, "discard"},

		// IPv6 forms that embed a refused IPv4 address.
		{"::ffff:127.0.0.1", Policy{}, "IPv4-mapped, for 127.0.0.1) is loopback"},
		{"::ffff:169.254.169.254", Policy{}, "link-local"},
		{"::ffff:10.1.2.3", Policy{}, "private"},
		{"::ffff:0.0.0.0", Policy{AllowPrivate: true}, "unspecified"},
		{"::ffff:0:127.0.0.1", Policy{}, "IPv4-translated, for 127.0.0.1) is loopback"},
		{"::127.0.0.1", Policy{}, "IPv4-compatible, for 127.0.0.1) is loopback"},
		{"::169.254.169.254", Policy{}, "link-local"},
		{"::0.0.0.2", Policy{AllowPrivate: true}, "this network"},
		{"64:ff9b::7f00:1", Policy{}, "NAT64, for 127.0.0.1) is loopback"},
		{"64:ff9b::a9fe:a9fe", Policy{}, "NAT64, for 169.254.169.254) is link-local"},
		{"64:ff9b:1::1", Policy{}, "local-use NAT64"},
		{"2002:7f00:1::", Policy{}, "6to4, for 127.0.0.1) is loopback"},
		{"2002:a9fe:a9fe::1", Policy{}, "link-local"},
		{"::ffff:127.0.0.1", Policy{AllowPrivate: true}, ""},

		// Ranges allowed explicitly, and only those.
		{"10.0.5.7", mirror, ""},
		{"10.0.6.7", mirror, "private"},
		{"127.0.0.2", mirror, ""},
		{"::ffff:127.0.0.2", mirror, ""},
		{"127.0.0.1", mirror, "loopback"},
		{"::ffff:127.0.0.1", mirror, "loopback"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%+v", tt.addr, tt.policy), func(t *testing.T) {
			err := tt.policy.CheckAddr(netip.MustParseAddr(tt.addr))
			checkRefused(t, "CheckAddr("+tt.addr+")", err, tt.refused)
		})
	}
	if err := (Policy{AllowPrivate: true}).CheckAddr(netip.Addr{}); !errors.Is(err, ErrRefused) {
		t.Errorf("CheckAddr(zero Addr) = %v, want refused", err)
	}
}

// checkRefused fails t unless err is nil and want is "", or err is a
// *RefusedError whose message contains want.
func checkRefused(t *testing.T, what string, err error, want string) {
	t.Helper()
	var re *RefusedError
	switch {
	case want == "" && err != nil:
		t.Errorf("%s = %v, want allowed", what, err)
	case want != "" && err == nil:
		t.Errorf("%s = nil, want refused: %s", what, want)
	case want != "" && (!errors.As(err, &re) || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), want)):
		t.Errorf("%s = %v, want a *RefusedError saying %q", what, err, want)
	}
}

func TestCheckURL(t *testing.T) {
	strict, lax := Policy{}, Policy{AllowPrivate: true, AllowHTTP: true}
	tests := []struct {
		url     string
		policy  Policy
		refused string
	}{
		{"https://example.org/hello-1.0.tar.gz", strict, ""},
		{"https://EXAMPLE.org:8443/a.tgz", strict, ""},
		{"HTTPS://example.org/a.tgz", strict, ""},
		{"https://[2606:4700::1111]/a.tgz", strict, ""},
		{"https://8.8.8.8/a.tgz", strict, ""},
		{"http://example.org/hello-1.0.tar.gz", strict, "want https, or allow http with --allow-http-fetch"},
		{"http://example.org/hello-1.0.tar.gz", Policy{AllowHTTP: true}, ""},

		{"file:///etc/passwd", strict, `scheme "file"`},
		{"file:///etc/passwd", lax, `scheme "file"`},
		{"ftp://example.org/a.tgz", lax, `scheme "ftp"`},
		{"gopher://127.0.0.1:6379/_INFO", lax, `scheme "gopher"`},
		{"data:text/plain,hello", lax, `scheme "data"`},
		{"jar:https://example.org/a.jar!/", lax, `scheme "jar"`},
		{"//example.org/a.tgz", lax, "no scheme"},
		{"/etc/passwd", lax, "no scheme"},
		{"https:example.org/a.tgz", lax, "want scheme://host/path"},
		{"https:///a.tgz", lax, "no host"},
		{"https://user:secret@example.org/a.tgz", strict, "user information"},
		{"https://example.org@127.0.0.1/a.tgz", strict, "user information"},
		{"https://example.org:0/a.tgz", strict, `port "0"`},
		{"https://example.org:99999/a.tgz", strict, `port "99999"`},
		{"https://exa mple.org/", strict, "not a URL"},

		{"http://127.0.0.1:8080/a.tgz", Policy{AllowHTTP: true}, "127.0.0.1 is loopback"},
		{"https://127.0.0.1/a.tgz", strict, "127.0.0.1 is loopback: only public addresses are fetched from; allow it with --allow-private-fetch"},
		{"http://[::1]/a.tgz", Policy{AllowHTTP: true}, "::1 is loopback"},
		{"https://[::ffff:127.0.0.1]/a.tgz", strict, "loopback"},
		{"https://[::ffff:7f00:1]/a.tgz", strict, "loopback"},
		{"https://[fe80::1%25eth0]/a.tgz", lax, "zone"},
		{"https://[127.0.0.1]/a.tgz", lax, "not a URL"},
		{"http://169.254.169.254/latest/meta-data/", Policy{AllowHTTP: true}, "169.254.169.254 is link-local"},
		{"https://10.1.2.3/a.tgz", strict, "private"},
		{"https://0.0.0.0/a.tgz", lax, "unspecified"},
		{"https://localhost/a.tgz", strict, `host "localhost" is this machine`},
		{"https://LocalHost./a.tgz", strict, "is this machine"},
		{"https://evil.localhost/a.tgz", strict, "is this machine"},
		{"https://127.1/a.tgz", lax, "short or numeric form"},
		{"https://2130706433/a.tgz", lax, "short or numeric form"},
		{"https://0x7f000001/a.tgz", lax, "short or numeric form"},
		{"https://0177.0.0.1/a.tgz", lax, "short or numeric form"},
		{"https://example.0x7f/a.tgz", lax, "short or numeric form"},
		{"https://exa_mple..org/a.tgz", lax, "not a host name"},
		{"https://bücher.example/a.tgz", lax, "not a host name"},
		{"https://xn--bcher-kva.example/a.tgz", strict, ""},

		{"http://127.0.0.1:8080/a.tgz", lax, ""},
		{"https://localhost/a.tgz", lax, ""},
		{"https://10.0.5.9/a.tgz", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.5.0/24")}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := tt.policy.CheckURL(tt.url)
			checkRefused(t, "CheckURL("+tt.url+")", err, tt.refused)
			var re *RefusedError
			if errors.As(err, &re) && re.URL != tt.url {
				t.Errorf("RefusedError.URL = %q, want %q", re.URL, tt.url)
			}
		})
	}
}

func TestParseAllow(t *testing.T) {
	got, err := ParseAllow([]string{"10.0.5.0/24", "127.0.0.2", "fd00::/64", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	want := "[10.0.5.0/24 127.0.0.2/32 fd00::/64 ::1/128]"
	if fmt.Sprint(got) != want {
		t.Errorf("ParseAllow = %v, want %v", got, want)
	}
	for _, bad := range []string{"10.0.5.1/24", "example.org", "10.0.0.0/33", "fe80::1%eth0", ""} {
		if _, err := ParseAllow([]string{bad}); err == nil || !strings.Contains(err.Error(), "--allow-fetch-from") {
			t.Errorf("ParseAllow(%q) = %v, want an error naming --allow-fetch-from", bad, err)
		}
	}
}

// counter is an HTTP server that counts the requests it gets.
type counter struct {
	*httptest.Server
	n atomic.Int64
}

func serve(t *testing.T, addr string, h http.HandlerFunc) *counter {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{}
	c.Server = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.n.Add(1)
		h(w, r)
	})}}
	c.Start()
	t.Cleanup(c.Close)
	return c
}

func port(s *httptest.Server) string { return strconv.Itoa(s.Listener.Addr().(*net.TCPAddr).Port) }

// TestClient fetches through Client with every real part but the DNS
// zone: listeners on 127.0.0.1 (the loopback an attacker aims at, which
// counts what reaches it) and 127.0.0.2 (a mirror the policy allows by
// address), the Go resolver asking a DNS server on 127.0.0.1 that
// resolves evil.test to 127.0.0.1, and the system's resolver for
// localhost (the hosts file).
func TestClient(t *testing.T) {
	secret := serve(t, "127.0.0.1:0", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "secret") })
	sp := port(secret.Server)
	mirror := serve(t, "127.0.0.2:0", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "source")
		case "/to-loopback":
			http.Redirect(w, r, "http://127.0.0.1:"+sp+"/", http.StatusFound)
		case "/to-evil":
			http.Redirect(w, r, "http://evil.test:"+sp+"/", http.StatusMovedPermanently)
		case "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case "/to-localhost":
			http.Redirect(w, r, "http://localhost:"+sp+"/", http.StatusTemporaryRedirect)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		}
	})
	mp := port(mirror.Server)
	dns := dnstest.Start(t, map[string][]netip.Addr{
		"evil.test":   {netip.MustParseAddr("127.0.0.1")},
		"evil6.test":  {netip.MustParseAddr("::1"), netip.MustParseAddr("::ffff:127.0.0.1")},
		"mirror.test": {netip.MustParseAddr("127.0.0.2")},
	})
	p := Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, Resolver: dns.Resolver()}
	c := p.Client(0)

	get := func(url string) (string, error) {
		resp, err := c.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	// What the policy allows gets through: the refusals below are not
	// those of a client that fetches nothing.
	for _, url := range []string{"http://127.0.0.2:" + mp + "/ok", "http://mirror.test:" + mp + "/ok"} {
		if body, err := get(url); err != nil || body != "source" {
			t.Fatalf("GET %s = %q, %v; want the source", url, body, err)
		}
	}

	tests := []struct{ name, url, refused string }{
		{"loopback", "http://127.0.0.1:" + sp + "/", "127.0.0.1 is loopback"},
		{"IPv6 loopback", "http://[::1]:" + sp + "/", "::1 is loopback"},
		{"mapped loopback", "http://[::ffff:127.0.0.1]:" + sp + "/", "loopback"},
		{"metadata", "http://169.254.169.254/latest/meta-data/", "link-local"},
		{"file", "file:///etc/passwd", `scheme "file"`},
		{"localhost", "http://localhost:" + sp + "/", "is this machine"},
		{"a name that resolves to loopback", "http://evil.test:" + sp + "/", "127.0.0.1 is loopback"},
		{"a name that resolves to IPv6 loopback", "http://evil6.test:" + sp + "/", "loopback"},
		{"redirect to loopback", "http://127.0.0.2:" + mp + "/to-loopback", "127.0.0.1 is loopback"},
		{"redirect to a name that resolves to loopback", "http://127.0.0.2:" + mp + "/to-evil", "127.0.0.1 is loopback"},
		{"redirect to localhost", "http://127.0.0.2:" + mp + "/to-localhost", "is this machine"},
		{"redirect to a file", "http://127.0.0.2:" + mp + "/to-file", `scheme "file"`},
		{"redirect loop", "http://127.0.0.2:" + mp + "/loop", "more than 10 redirects"},
		{"http without AllowHTTP", "http://example.org/a.tgz", "allow http with --allow-http-fetch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := c
			if tt.name == "http without AllowHTTP" {
				c = Policy{Resolver: dns.Resolver()}.Client(0)
			}
			resp, err := c.Get(tt.url)
			if err == nil {
				resp.Body.Close()
			}
			checkRefused(t, "GET "+tt.url, err, tt.refused)
		})
	}
	if dns.Queries("evil.test") == 0 || dns.Queries("evil6.test") == 0 {
		t.Errorf("DNS queries for evil.test: %d, evil6.test: %d; want some: the dial was refused after resolution", dns.Queries("evil.test"), dns.Queries("evil6.test"))
	}
	if dns.Queries("example.org") != 0 {
		t.Errorf("example.org was looked up: http is refused before anything is")
	}
	if n := secret.n.Load(); n != 0 {
		t.Errorf("the loopback listener got %d requests, want none", n)
	}

	// The dial check by itself, for a name the check of URLs refuses: the
	// system's resolver (the hosts file) says what localhost is.
	conn, err := p.dialer(0).DialContext(t.Context(), "tcp", "localhost:"+sp)
	if err == nil {
		conn.Close()
	}
	checkRefused(t, "dial localhost", err, "loopback")
	if n := secret.n.Load(); n != 0 {
		t.Errorf("the loopback listener got %d requests, want none", n)
	}
	// And the same dial is let through where loopback is allowed: the
	// check is what refused it.
	conn, err = Policy{AllowPrivate: true}.dialer(0).DialContext(t.Context(), "tcp", "localhost:"+sp)
	if err != nil {
		t.Fatalf("dial localhost with AllowPrivate: %v", err)
	}
	conn.Close()

	// The environment's proxy is not used: it would be the proxy's address
	// that the dial check saw.
	if tr := c.Transport.(*guarded).next.(*http.Transport); tr.Proxy != nil {
		t.Errorf("Transport.Proxy is set: want no proxy")
	}
}

// FuzzCheckURL: whatever a claim's URL is, CheckURL does not panic, and a
// URL it lets through under the strict policy is https to a host that is
// a name (not localhost, not numeric) or a public address, as the HTTP
// client will parse it.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://example.org/a.tgz", "http://127.0.0.1:8080/", "https://[::ffff:127.0.0.1]/", "file:///etc/passwd",
		"https://user@example.org/", "https://0x7f.1/", "https://localhost./", "https://[fe80::1%25eth0]/", "HTTPS://EXAMPLE.ORG:443/x?y#z",
		"https://example.org\\@127.0.0.1/", "https://127.0.0.1%2f@example.org/", "https://xn--80ak6aa92e.com/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if err := (Policy{}).CheckURL(raw); err != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("CheckURL(%q) = nil, but url.Parse: %v", raw, err)
		}
		host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
		if !strings.EqualFold(u.Scheme, "https") || host == "" || u.User != nil || host == "localhost" || strings.HasSuffix(host, ".localhost") {
			t.Fatalf("CheckURL(%q) = nil: scheme %q, host %q, user %v", raw, u.Scheme, host, u.User)
		}
		if a, err := netip.ParseAddr(host); err == nil {
			if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified() || a.Unmap().IsLoopback() || a.Unmap().IsPrivate() {
				t.Fatalf("CheckURL(%q) = nil for the address %s", raw, a)
			}
		} else if ip := net.ParseIP(host); ip != nil {
			t.Fatalf("CheckURL(%q) = nil for %q, which net.ParseIP reads as %s", raw, host, ip)
		}
	})
}

// FuzzCheckAddr: an address the strict policy lets through is none that
// the standard library calls loopback, private, link-local, multicast or
// unspecified, in itself or as the IPv4 address it embeds.
func FuzzCheckAddr(f *testing.F) {
	for _, s := range []string{"8.8.8.8", "127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:a9fe:a9fe::", "::127.0.0.1", "fe80::1"} {
		f.Add(netip.MustParseAddr(s).AsSlice())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		if !ok || (Policy{}).CheckAddr(a) != nil {
			return
		}
		forms := []netip.Addr{a, a.Unmap()}
		if v4, _, ok := embedded(a); ok {
			forms = append(forms, v4)
		}
		for _, x := range forms {
			if x.IsLoopback() || x.IsPrivate() || x.IsLinkLocalUnicast() || x.IsLinkLocalMulticast() || x.IsMulticast() || x.IsUnspecified() || x.IsInterfaceLocalMulticast() {
				t.Fatalf("CheckAddr(%s) = nil, but %s is not public", a, x)
			}
		}
	})
}
