// Package dnstest is a DNS server on 127.0.0.1 for tests: it answers the
// names a test gives with the addresses it gives, as a real zone would, so
// that a test can have a name resolve to what an attacker would make it
// resolve to, through the Go resolver's own code, with no name outside
// the machine looked up.
package dnstest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Server answers A and AAAA queries over UDP on 127.0.0.1.
type Server struct {
	conn  net.PacketConn
	names map[string][]netip.Addr // by lower-case fully qualified name

	mu      sync.Mutex
	queries map[string]int
}

// Start starts a server that answers each name of names (such as
// "evil.test") with its addresses, and any other name with NXDOMAIN. It
// stops when the test ends.
func Start(t testing.TB, names map[string][]netip.Addr) *Server {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	s := &Server{conn: conn, names: map[string][]netip.Addr{}, queries: map[string]int{}}
	for n, addrs := range names {
		s.names[fqdn(n)] = addrs
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve()
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

func fqdn(name string) string { return strings.TrimSuffix(strings.ToLower(name), ".") + "." }

// Resolver returns a resolver that asks s, and only s, for every name not
// in the hosts file.
func (s *Server) Resolver() *net.Resolver {
	addr := s.conn.LocalAddr().String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", addr)
		},
	}
}

// Queries returns how many queries s answered for name.
func (s *Server) Queries(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[fqdn(name)]
}

func (s *Server) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		if resp, ok := s.answer(buf[:n]); ok {
			s.conn.WriteTo(resp, from)
		}
	}
}

func (s *Server) answer(query []byte) ([]byte, bool) {
	var q dnsmessage.Message
	if err := q.Unpack(query); err != nil || len(q.Questions) != 1 {
		return nil, false
	}
	question := q.Questions[0]
	name := strings.ToLower(question.Name.String())
	s.mu.Lock()
	s.queries[name]++
	s.mu.Unlock()
	resp := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: q.ID, Response: true, Authoritative: true, RecursionDesired: q.RecursionDesired, RecursionAvailable: true},
		Questions: q.Questions,
	}
	addrs, ok := s.names[name]
	if !ok {
		resp.RCode = dnsmessage.RCodeNameError
	}
	for _, a := range addrs {
		h := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 0}
		switch {
		case question.Type == dnsmessage.TypeA && a.Is4():
			h.Type = dnsmessage.TypeA
			resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: a.As4()}})
		case question.Type == dnsmessage.TypeAAAA && a.Is6():
			h.Type = dnsmessage.TypeAAAA
			resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
		}
	}
	b, err := resp.Pack()
	return b, err == nil
}
