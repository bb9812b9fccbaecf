package natsserver_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/natsq/natsauth"
	"github.com/lanternfarm/lantern/natsq/natsserver"
)

const patience = 60 * time.Second

func start(t *testing.T, dir string, opts natsserver.Options) *natsserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	if opts.Auth == nil {
		a, err := natsauth.Open(filepath.Join(dir, "auth"))
		if err != nil {
			t.Fatal(err)
		}
		opts.Auth = a
	}
	opts.Dir = filepath.Join(dir, "nats")
	if opts.Port == 0 {
		opts.Port = -1
	}
	s, err := natsserver.Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start() = %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// push tells the server of the farm's accounts (a builder's new one among
// them), as a running scheduler does.
func push(t *testing.T, s *natsserver.Server, auth *natsauth.Farm, revoked map[string]time.Time) {
	t.Helper()
	opts := []nats.Option{nats.UserCredentials(auth.SystemCredsFile())}
	if s.CAFile() != "" {
		opts = append(opts, nats.RootCAs(s.CAFile()))
	}
	sys, err := nats.Connect(s.URL(), opts...)
	if err != nil {
		t.Fatalf("the system user: %v", err)
	}
	defer sys.Close()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	if err := auth.Push(ctx, sys, revoked); err != nil {
		t.Fatalf("Push() = %v", err)
	}
}

func writeCreds(t *testing.T, creds []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(f, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestNoAnonymous: nobody connects without the farm's credentials, on
// loopback too; credentials of another farm do not do either.
func TestNoAnonymous(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, natsserver.Options{})
	if nc, err := nats.Connect(s.URL(), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected")
	} else if !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("anonymous Connect() = %v, want an authorization violation", err)
	}
	other, err := natsauth.Open(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(s.URL(), nats.NoReconnect(), nats.UserCredentials(other.SchedulerCredsFile())); err == nil {
		nc.Close()
		t.Fatal("another farm's scheduler connected")
	}
	a, err := natsauth.Open(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.URL(), nats.NoReconnect(), nats.UserCredentials(a.SchedulerCredsFile()))
	if err != nil {
		t.Fatalf("the farm's scheduler: Connect() = %v", err)
	}
	nc.Close()
}

// TestRevocation: a builder's credentials stop working when the farm
// pushes its revocation: its connection is closed at once, it cannot come
// back, another builder goes on, and a restarted server still refuses it.
func TestRevocation(t *testing.T) {
	dir := t.TempDir()
	auth, err := natsauth.Open(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, dir, natsserver.Options{Auth: auth})
	a, b := lantern.DigestOf([]byte("a")), lantern.DigestOf([]byte("b"))
	credsA, userA, err := auth.Creds("a", natsq.RoleBuilder, a)
	if err != nil {
		t.Fatal(err)
	}
	credsB, _, err := auth.Creds("b", natsq.RoleBuilder, b)
	if err != nil {
		t.Fatal(err)
	}
	fileA, fileB := writeCreds(t, credsA), writeCreds(t, credsB)
	push(t, s, auth, nil)
	closedA := make(chan struct{})
	ncA, err := nats.Connect(s.URL(), nats.UserCredentials(fileA), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.ClosedHandler(func(*nats.Conn) { close(closedA) }))
	if err != nil {
		t.Fatal(err)
	}
	defer ncA.Close()
	ncB, err := nats.Connect(s.URL(), nats.UserCredentials(fileB))
	if err != nil {
		t.Fatal(err)
	}
	defer ncB.Close()

	sys, err := nats.Connect(s.URL(), nats.UserCredentials(auth.SystemCredsFile()))
	if err != nil {
		t.Fatalf("the system user: %v", err)
	}
	defer sys.Close()
	revoked := map[string]time.Time{userA: time.Now()}
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	if err := auth.Push(ctx, sys, revoked); err != nil {
		t.Fatalf("Push() = %v", err)
	}
	select {
	case <-closedA:
	case <-time.After(patience):
		t.Fatalf("builder A's connection is still open after its revocation (status %v)", ncA.Status())
	}
	if err := ncA.LastError(); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("A's connection closed with %v, want the server's authorization error", err)
	}
	if nc, err := nats.Connect(s.URL(), nats.NoReconnect(), nats.UserCredentials(fileA)); err == nil {
		nc.Close()
		t.Fatal("revoked credentials connected again")
	}
	if err := ncB.Flush(); err != nil || !ncB.IsConnected() {
		t.Fatalf("builder B lost its connection with A's revocation: %v", err)
	}
	// New credentials of the same builder are not revoked by it.
	credsA2, _, err := auth.Creds("a", natsq.RoleBuilder, a)
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(s.URL(), nats.NoReconnect(), nats.UserCredentials(writeCreds(t, credsA2))); err != nil {
		t.Errorf("new credentials after a revocation of others: %v", err)
	} else {
		nc.Close()
	}

	// A server started again, with the revocations, refuses A.
	url := s.URL()
	s.Shutdown()
	_, port, _ := strings.Cut(strings.TrimPrefix(url, "nats://"), ":")
	var p int
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	s2 := start(t, dir, natsserver.Options{Auth: auth, Revoked: revoked, Port: p})
	if nc, err := nats.Connect(s2.URL(), nats.NoReconnect(), nats.UserCredentials(fileA)); err == nil {
		nc.Close()
		t.Fatal("revoked credentials connected to the restarted server")
	}
}

// TestTLS: with a certificate, the server speaks only TLS; a client needs
// the farm's CA, which the builder's credentials can carry.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	auth, err := natsauth.Open(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := natsserver.EnsureTLS(filepath.Join(dir, "tls"), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, dir, natsserver.Options{Auth: auth, TLSCert: files.Cert, TLSKey: files.Key})
	if !strings.HasPrefix(s.URL(), "tls://") {
		t.Errorf("URL() = %s, want tls://", s.URL())
	}
	ca, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	b := lantern.DigestOf([]byte("b"))
	creds, _, err := auth.Creds("b", natsq.RoleBuilder, b)
	if err != nil {
		t.Fatal(err)
	}
	withCA := natsauth.AppendCA(creds, ca)
	// The nats tools read the credentials as ever, CA and all.
	if tok, err := jwt.ParseDecoratedJWT(withCA); err != nil {
		t.Fatalf("ParseDecoratedJWT(creds with CA) = %v", err)
	} else if _, err := jwt.DecodeUserClaims(tok); err != nil {
		t.Fatalf("the JWT of creds with CA: %v", err)
	}
	if _, err := jwt.ParseDecoratedUserNKey(withCA); err != nil {
		t.Fatalf("ParseDecoratedUserNKey(creds with CA) = %v", err)
	}
	file := writeCreds(t, withCA)
	tlsOpt := nats.RootCAs(files.CA)
	sys, err := nats.Connect(s.URL(), nats.UserCredentials(auth.SystemCredsFile()), tlsOpt)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(t.Context(), patience)
	defer pcancel()
	if err := auth.Push(pctx, sys, nil); err != nil {
		t.Fatal(err)
	}
	sys.Close()
	plain := strings.Replace(s.URL(), "tls://", "nats://", 1)
	if nc, err := nats.Connect(plain, nats.NoReconnect(), nats.UserCredentials(file)); err == nil {
		nc.Close()
		t.Fatal("connected without verifying the server's certificate")
	}
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	q, err := natsq.Connect(ctx, s.URL(), natsq.Config{Creds: file, Role: natsq.RoleBuilder, Builder: b}, nil)
	if err != nil {
		t.Fatalf("natsq.Connect with the CA from the credentials: %v", err)
	}
	q.Close()
	// Another CA's certificate is refused.
	other, err := natsserver.EnsureTLS(filepath.Join(t.TempDir(), "tls"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if q, err := natsq.Connect(ctx, s.URL(), natsq.Config{Creds: file, CA: other.CA, Role: natsq.RoleBuilder, Builder: b}, nil); err == nil {
		q.Close()
		t.Fatal("connected to a server whose certificate another CA signed")
	}
}

// TestEnsureTLS: the CA is made once; the server's certificate again only
// when it lacks a name.
func TestEnsureTLS(t *testing.T) {
	dir := t.TempDir()
	f1, err := natsserver.EnsureTLS(dir, []string{"10.1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	ca1, _ := os.ReadFile(f1.CA)
	cert1, _ := os.ReadFile(f1.Cert)
	f2, err := natsserver.EnsureTLS(dir, []string{"10.1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	if cert2, _ := os.ReadFile(f2.Cert); string(cert2) != string(cert1) {
		t.Error("a certificate that covered every name was made again")
	}
	f3, err := natsserver.EnsureTLS(dir, []string{"10.9.9.9", "farm.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if cert3, _ := os.ReadFile(f3.Cert); string(cert3) == string(cert1) {
		t.Error("a certificate that lacked a name was kept")
	}
	if ca3, _ := os.ReadFile(f3.CA); string(ca3) != string(ca1) {
		t.Error("the CA was made again")
	}
	for _, f := range []string{f3.Key, filepath.Join(dir, "ca-key.pem")} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, fi.Mode().Perm(), err)
		}
	}
}
