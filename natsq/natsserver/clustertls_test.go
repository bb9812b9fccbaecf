package natsserver_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/natsq/natsauth"
	"github.com/lanternfarm/lantern/natsq/natsserver"
)

// testCA is a certificate authority of a test's own, for the certificates
// of a cluster's nodes.
type testCA struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{t: t, dir: t.TempDir(), cert: cert, key: key}
	ca.file = ca.write(name+".pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(name, typ string, der []byte) string {
	ca.t.Helper()
	f := filepath.Join(ca.dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return f
}

// node makes a certificate for 127.0.0.1 with the given uses and returns
// its file, its key's file and the pair for a Go TLS client.
func (ca *testCA) node(name string, uses ...x509.ExtKeyUsage) (certFile, keyFile string, pair tls.Certificate) {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: uses,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	certFile, keyFile = ca.write(name+".pem", "CERTIFICATE", der), ca.write(name+"-key.pem", "PRIVATE KEY", kder)
	pair, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		ca.t.Fatal(err)
	}
	return certFile, keyFile, pair
}

// routeConnectTLS speaks to a cluster port as a route over TLS would: a
// TLS handshake first with cert (nil: none), then the server's INFO, then
// CONNECT with the farm's route user and pass. It returns the server's
// first answer, or how the connection ended.
func routeConnectTLS(t *testing.T, addr string, roots *x509.CertPool, cert *tls.Certificate, pass string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, patience)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(patience))
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tc := tls.Client(c, cfg)
	if err := tc.Handshake(); err != nil {
		return "handshake: " + err.Error()
	}
	r := bufio.NewReader(tc)
	info, err := r.ReadString('\n')
	if err != nil {
		return "closed: " + err.Error()
	}
	if !strings.HasPrefix(info, "INFO ") || !strings.Contains(info, `"tls_required":true`) {
		t.Errorf("the cluster port's INFO over TLS: %s", info)
	}
	connect, _ := json.Marshal(map[string]any{"user": natsauth.RouteUser, "pass": pass, "name": "NSTRANGER", "cluster": "lantern", "headers": true, "tls_required": true})
	if _, err := tc.Write([]byte("CONNECT " + string(connect) + "\r\nPING\r\n")); err != nil {
		return "closed: " + err.Error()
	}
	return routeAnswer(r)
}

// TestRoutesOverTLS: three nodes whose routes speak TLS (the cluster's CA,
// each node's certificate good for server and client authentication) form
// a cluster that keeps streams of 3 replicas. On their cluster ports only a
// route with a certificate of the cluster's CA, usable by a client, and the
// farm's route secret gets through: one of another CA, one only for
// servers (as a farm's own server certificate is), none at all, or the
// right certificate without the secret are refused, and so is a route in
// the clear.
func TestRoutesOverTLS(t *testing.T) {
	dir := t.TempDir()
	auth, err := natsauth.Open(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "cluster-ca")
	var clusters, routes []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		clusters = append(clusters, ln.Addr().String())
		routes = append(routes, "nats://"+ln.Addr().String())
		ln.Close()
	}
	// The nodes' logs, shown if the test fails.
	var logs syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the nodes' logs:\n%s", logs.String())
		}
	})
	var urls []string
	for i, name := range []string{"n0", "n1", "n2"} {
		cert, key, _ := ca.node(name, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
		s := start(t, filepath.Join(dir, name), natsserver.Options{
			Auth: auth, Name: name, Cluster: clusters[i], Routes: routes,
			ClusterCA: ca.file, TLSCert: cert, TLSKey: key,
			Log: slog.New(slog.NewTextHandler(&logs, nil)).With("node", name),
		})
		urls = append(urls, s.URL())
	}

	// Streams of 3 replicas need the three nodes routed to each other.
	q, err := natsq.Connect(t.Context(), strings.Join(urls, ","), natsq.Config{
		Creds: auth.SchedulerCredsFile(), Role: natsq.RoleScheduler, CA: ca.file, Replicas: 3,
	}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// A cluster elects its leaders in its own time on a loaded machine.
	deadline := time.Now().Add(3 * patience)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), patience)
		err := q.Setup(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Setup with 3 replicas on the cluster routed over TLS: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	pw, err := auth.RoutePassword()
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	_, _, good := ca.node("stranger", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	_, _, serverOnly := ca.node("server-only", x509.ExtKeyUsageServerAuth)
	_, _, foreign := newTestCA(t, "another-ca").node("foreign", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	for name, c := range map[string]struct {
		cert *tls.Certificate
		pass string
	}{
		"another CA's certificate":     {&foreign, pw},
		"a certificate for servers":    {&serverOnly, pw},
		"no certificate":               {nil, pw},
		"the CA's, without the secret": {&good, strings.Repeat("0", 64)},
	} {
		got := routeConnectTLS(t, clusters[0], roots, c.cert, c.pass)
		t.Logf("%s: %s", name, got)
		if got == "PONG" {
			t.Errorf("%s: a route got through", name)
		}
	}
	got := routeConnect(t, clusters[0], natsauth.RouteUser, pw)
	t.Logf("in the clear: %s", got)
	if got == "PONG" {
		t.Errorf("a route in the clear with the farm's secret got through")
	}
	if got := routeConnectTLS(t, clusters[0], roots, &good, pw); got != "PONG" {
		t.Errorf("with the cluster CA's certificate and the farm's secret: %q, want PONG", got)
	}
}

// syncBuffer is a bytes.Buffer that several servers' loggers write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
