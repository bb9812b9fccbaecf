// Package netguard decides where the farm may fetch from. A source claim
// names the URL of its source, and a claim key is not the operator: left
// alone, a claim could have a worker fetch from the worker's own loopback,
// its cloud's metadata service (169.254.169.254) or a private network, or
// read a local file. A Policy allows https to public addresses only, unless
// its operator allows more; the scheduler checks a claim's URL when the
// claim arrives (CheckURL), and a worker fetches through Client, which
// checks again each address it actually connects to, after DNS
// resolution, and every redirect.
//
// A refusal is a *RefusedError (errors.Is(err, ErrRefused)): the claim's
// fault, which a worker signs as a failed rebuild, and not a failure of the
// network, which is worth a retry.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The settings that widen a Policy, as the commands name them: the errors
// say which one would allow what they refuse.
const (
	FlagAllowPrivate = "--allow-private-fetch"
	FlagAllowHTTP    = "--allow-http-fetch"
	FlagAllowFrom    = "--allow-fetch-from"
)

// MaxRedirects is how many redirects a Client follows.
const MaxRedirects = 10

// ErrRefused is what every refusal of a Policy is (errors.Is).
var ErrRefused = errors.New("fetch refused")

// RefusedError is a URL or an address a Policy refuses, and why.
type RefusedError struct {
	// URL is the URL refused, when a URL was.
	URL string
	// Addr is the address refused, when an address was.
	Addr netip.Addr
	// Reason says why, and which setting would allow it if one would.
	Reason string
}

func (e *RefusedError) Error() string {
	if e.URL != "" {
		return fmt.Sprintf("fetch refused: %q: %s", e.URL, e.Reason)
	}
	return "fetch refused: " + e.Reason
}

// Is reports whether target is ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Policy is where the farm may fetch from. The zero Policy allows https to
// public addresses only.
type Policy struct {
	// AllowPrivate allows loopback, private (RFC 1918, fc00::/7), shared
	// (100.64.0.0/10), link-local and other non-public unicast addresses,
	// and the name localhost: for tests, and for a farm whose sources are
	// on its own network (--allow-private-fetch).
	AllowPrivate bool
	// AllowHTTP allows http besides https (--allow-http-fetch).
	AllowHTTP bool
	// Allow are address ranges allowed whatever they are, such as a
	// private mirror's (--allow-fetch-from).
	Allow []netip.Prefix
	// Resolver looks up the names that Client dials (nil: the system's).
	Resolver *net.Resolver
}

// ParseAllow parses the ranges of --allow-fetch-from: CIDR prefixes or
// single addresses (a /32 or /128).
func ParseAllow(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		if p, err := netip.ParsePrefix(v); err == nil {
			if p != p.Masked() {
				return nil, fmt.Errorf("%s %q: host bits set; did you mean %s?", FlagAllowFrom, v, p.Masked())
			}
			out = append(out, p)
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%s %q: want an address range such as 10.0.5.0/24 or fd00::/64, or one address", FlagAllowFrom, v)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// CheckURL checks a URL a claim gives before anything is fetched: its
// scheme (https, or http if allowed), that it has a host and no user
// information, and the host if it is an address. A name is checked only
// for what it says by itself (localhost); what it resolves to is checked
// when Client dials it.
func (p Policy) CheckURL(raw string) error {
	refuse := func(format string, args ...any) error {
		return &RefusedError{URL: raw, Reason: fmt.Sprintf(format, args...)}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return refuse("not a URL: %v", errors.Unwrap(err))
	}
	switch scheme := strings.ToLower(u.Scheme); {
	case scheme == "https":
	case scheme == "http" && p.AllowHTTP:
	case scheme == "http":
		return refuse("http: want https, or allow http with %s", FlagAllowHTTP)
	case scheme == "":
		return refuse("no scheme: want an absolute https URL")
	default:
		return refuse("scheme %q: only https is fetched (http with %s)", u.Scheme, FlagAllowHTTP)
	}
	if u.Opaque != "" {
		return refuse("want scheme://host/path")
	}
	if u.User != nil {
		return refuse("user information in the URL: remove it; a claim carries no credentials")
	}
	host := u.Hostname()
	if host == "" {
		return refuse("no host")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return refuse("port %q: want a number from 1 to 65535", port)
		}
	}
	if strings.HasPrefix(u.Host, "[") {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return refuse("host %q: not an IPv6 address", host)
		}
		if a.Zone() != "" {
			return refuse("host %q: an address with a zone is link-local; name a public host", host)
		}
		return withURL(p.CheckAddr(a), raw)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return withURL(p.CheckAddr(a), raw)
	}
	return withURL(p.checkName(host), raw)
}

// checkName checks a host name by itself.
func (p Policy) checkName(host string) error {
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return &RefusedError{Reason: fmt.Sprintf("host %q: not a host name (want letters, digits and hyphens, in ASCII: punycode for others)", host)}
		}
	}
	// A resolver, or another URL parser, may read a numeric last label as
	// an IPv4 address in another form (127.1, 2130706433, 0x7f000001).
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" ||
		strings.HasPrefix(last, "0x") && strings.Trim(last[2:], "0123456789abcdef") == "" {
		return &RefusedError{Reason: fmt.Sprintf("host %q: an IPv4 address in a short or numeric form; write it as a.b.c.d", host)}
	}
	if (name == "localhost" || strings.HasSuffix(name, ".localhost")) && !p.AllowPrivate {
		return &RefusedError{Reason: fmt.Sprintf("host %q is this machine: only public hosts are fetched from (loopback with %s)", host, FlagAllowPrivate)}
	}
	return nil
}

func withURL(err error, raw string) error {
	var re *RefusedError
	if errors.As(err, &re) && re.URL == "" {
		re.URL = raw
	}
	return err
}

// A special is a range of addresses that are not public.
type special struct {
	prefix netip.Prefix
	what   string
	// private ranges are allowed by AllowPrivate; the others never make
	// sense to fetch from.
	private bool
}

var specials = func() []special {
	list := []struct {
		prefix, what string
		private      bool
	}{
		{"0.0.0.0/8", `in 0.0.0.0/8, "this network" (connecting to 0.0.0.0 reaches this machine)`, false},
		{"0.0.0.0/32", "the unspecified address (connecting to it reaches this machine)", false},
		{"10.0.0.0/8", "private (RFC 1918)", true},
		{"100.64.0.0/10", "shared address space (carrier-grade NAT, RFC 6598)", true},
		{"127.0.0.0/8", "loopback", true},
		{"169.254.0.0/16", "link-local (where cloud metadata services answer)", true},
		{"172.16.0.0/12", "private (RFC 1918)", true},
		{"192.0.0.0/24", "reserved for IETF protocol assignments", true},
		{"192.0.2.0/24", "reserved for documentation", true},
		{"192.88.99.0/24", "the former 6to4 relay anycast range", true},
		{"192.168.0.0/16", "private (RFC 1918)", true},
		{"198.18.0.0/15", "reserved for benchmarking", true},
		{"198.51.100.0/24", "reserved for documentation", true},
		{"203.0.113.0/24", "reserved for documentation", true},
		{"224.0.0.0/4", "multicast", false},
		{"240.0.0.0/4", "reserved", false},
		{"255.255.255.255/32", "the broadcast address", false},

		{"::/128", "the unspecified address (connecting to it reaches this machine)", false},
		{"::1/128", "loopback", true},
		{"100::/64", "a discard-only range", false},
		{"2001::/32", "a Teredo tunnel address", true},
		{"2001:db8::/32", "reserved for documentation", true},
		{"64:ff9b:1::/48", "a local-use NAT64 range (RFC 8215)", true},
		{"fc00::/7", "unique local, the private range of IPv6", true},
		{"fe80::/10", "link-local", true},
		{"fec0::/10", "site-local (deprecated, private)", true},
		{"ff00::/8", "multicast", false},
	}
	out := make([]special, len(list))
	for i, s := range list {
		out[i] = special{netip.MustParsePrefix(s.prefix), s.what, s.private}
	}
	// Most specific first: the first match is the range to name.
	slices.SortStableFunc(out, func(a, b special) int { return b.prefix.Bits() - a.prefix.Bits() })
	return out
}()

// embedded returns the IPv4 address an IPv6 address stands for, if it is
// one of the forms that carry one: IPv4-mapped (::ffff:a.b.c.d),
// IPv4-translated (::ffff:0:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64
// (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::).
func embedded(a netip.Addr) (netip.Addr, string, bool) {
	if !a.Is6() {
		return netip.Addr{}, "", false
	}
	b := a.As16()
	v4 := func(i int) netip.Addr { return netip.AddrFrom4([4]byte(b[i : i+4])) }
	zero := func(bs []byte) bool { return !slices.ContainsFunc(bs, func(c byte) bool { return c != 0 }) }
	switch {
	case a.Is4In6():
		return a.Unmap(), "IPv4-mapped", true
	case zero(b[:8]) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0:
		return v4(12), "IPv4-translated", true
	case zero(b[:12]) && a != netip.IPv6Unspecified() && a != netip.IPv6Loopback():
		return v4(12), "IPv4-compatible", true
	case netip.MustParsePrefix("64:ff9b::/96").Contains(a):
		return v4(12), "NAT64", true
	case b[0] == 0x20 && b[1] == 0x02:
		return v4(2), "6to4", true
	}
	return netip.Addr{}, "", false
}

// CheckAddr checks an address the farm would connect to: it refuses the
// unspecified address, loopback, private, shared, link-local, multicast,
// broadcast and reserved addresses, and IPv6 addresses that embed one,
// unless the Policy allows them.
func (p Policy) CheckAddr(a netip.Addr) error {
	if !a.IsValid() {
		return &RefusedError{Reason: "no address"}
	}
	a = a.WithZone("")
	v4, form, isEmbedded := embedded(a)
	if p.allowed(a) || isEmbedded && p.allowed(v4) {
		return nil
	}
	check, name := a, a.String()
	if isEmbedded {
		check, name = v4, fmt.Sprintf("%s (%s, for %s)", a, form, v4)
	}
	for _, s := range specials {
		if !s.prefix.Contains(check) {
			continue
		}
		switch {
		case !s.private:
			return &RefusedError{Addr: a, Reason: fmt.Sprintf("%s is %s: never fetched from; give a URL on a public host", name, s.what)}
		case p.AllowPrivate:
			return nil
		}
		return &RefusedError{Addr: a, Reason: fmt.Sprintf("%s is %s: only public addresses are fetched from; allow it with %s, or its range with %s CIDR",
			name, s.what, FlagAllowPrivate, FlagAllowFrom)}
	}
	if a.Is6() && !isEmbedded && !globalUnicast6.Contains(a) {
		return &RefusedError{Addr: a, Reason: fmt.Sprintf("%s is outside 2000::/3, the global unicast range of IPv6: never fetched from; give a URL on a public host", a)}
	}
	return nil
}

var globalUnicast6 = netip.MustParsePrefix("2000::/3")

func (p Policy) allowed(a netip.Addr) bool {
	return slices.ContainsFunc(p.Allow, func(pr netip.Prefix) bool { return pr.Contains(a) })
}

// Client returns an HTTP client that fetches only what p allows: every
// request's URL is checked (CheckURL), redirects included (at most
// MaxRedirects), and every address it connects to is checked after DNS
// resolution (CheckAddr), so a name that resolves to a loopback address,
// or one that resolves to a public address once and a private one next,
// gets nowhere. It ignores the environment's proxy settings: through a
// proxy, the address connected to would be the proxy's. timeout bounds
// each connection's dial, TLS handshake and wait for the response's
// headers (zero: 30 seconds); the request's context bounds the rest.
func (p Policy) Client(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	p.Allow = slices.Clone(p.Allow)
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           p.dialer(timeout).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          16,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: &guarded{p: p, next: t},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= MaxRedirects {
				return &RefusedError{URL: req.URL.String(), Reason: fmt.Sprintf("more than %d redirects", MaxRedirects)}
			}
			return p.CheckURL(req.URL.String())
		},
	}
}

// dialer connects only to addresses p allows, checked once resolved.
func (p Policy) dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout:   timeout,
		KeepAlive: 30 * time.Second,
		Resolver:  p.Resolver,
		ControlContext: func(_ context.Context, network, address string, _ syscall.RawConn) error {
			if network != "tcp4" && network != "tcp6" {
				return &RefusedError{Reason: fmt.Sprintf("dial %s %s: only TCP is fetched over", network, address)}
			}
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return &RefusedError{Reason: fmt.Sprintf("dial %s %q: not an address", network, address)}
			}
			return p.CheckAddr(ap.Addr())
		},
	}
}

// guarded checks each request's URL before its transport sends it: the
// first request's, which no CheckRedirect sees.
type guarded struct {
	p    Policy
	next http.RoundTripper
}

func (g *guarded) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := g.p.CheckURL(req.URL.String()); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	resp, err := g.next.RoundTrip(req)
	var re *RefusedError
	if errors.As(err, &re) && re.URL == "" {
		re.URL = req.URL.String() // a dial's refusal, which knows only the address
	}
	return resp, err
}
