package natsauth_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/natsq"
	"github.com/lanternfarm/lantern/natsq/natsauth"
)

// TestRevocationsAreNeverUndone: once revoked, a user stays revoked in
// every account JWT the farm makes, whatever the registry says later (a
// lost or restored file).
func TestRevocationsAreNeverUndone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	f, err := natsauth.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := lantern.DigestOf([]byte("b"))
	_, user, err := f.Creds("b", natsq.RoleBuilder, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Revoked(map[string]time.Time{user: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Opened again, told of no revocation at all.
	f2, err := natsauth.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := f2.ServerConfig(natsauth.ServerConfig{StoreDir: "js", ResolverDir: "acc"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(conf, "\n") {
		id, tok, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok || !strings.HasPrefix(id, "A") || !strings.HasPrefix(tok, "eyJ") {
			continue
		}
		ac, err := jwt.DecodeAccountClaims(tok)
		if err != nil {
			t.Fatalf("account %s: %v", id, err)
		}
		if strings.HasPrefix(ac.Name, "BUILDER_") {
			found = true
			uc := jwt.NewUserClaims(user)
			uc.IssuedAt = time.Now().Add(24 * time.Hour).Unix() // even one issued later
			if !ac.IsClaimRevoked(uc) {
				t.Errorf("builder b's account after a restart does not revoke its revoked user")
			}
		}
	}
	if !found {
		t.Fatalf("no builder account in the server configuration:\n%s", conf)
	}
}

// TestBuilderAccountImportsOnlyItsOwn: a builder's account imports its own
// consumer, acks, results and bucket, and nothing of another builder's.
func TestBuilderAccountImportsOnlyItsOwn(t *testing.T) {
	f, err := natsauth.Open(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := lantern.DigestOf([]byte("a")), lantern.DigestOf([]byte("b"))
	for _, d := range []lantern.Digest{a, b} {
		if _, _, err := f.Creds("x", natsq.RoleBuilder, d); err != nil {
			t.Fatal(err)
		}
	}
	conf, err := f.ServerConfig(natsauth.ServerConfig{StoreDir: "js", ResolverDir: "acc"})
	if err != nil {
		t.Fatal(err)
	}
	accounts := 0
	for _, line := range strings.Split(conf, "\n") {
		_, tok, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok || !strings.HasPrefix(tok, "eyJ") {
			continue
		}
		ac, err := jwt.DecodeAccountClaims(tok)
		if err != nil || !strings.HasPrefix(ac.Name, "BUILDER_") {
			continue
		}
		accounts++
		own, other := a, b
		if ac.Name != "BUILDER_"+a.Hex()[:16] {
			own, other = b, a
		}
		for _, imp := range ac.Imports {
			subj := string(imp.Subject)
			if strings.Contains(subj, "*") || subj == ">" || strings.HasSuffix(subj, ".*") {
				t.Errorf("%s imports a wildcard subject %q", ac.Name, subj)
			}
			if strings.Contains(subj, other.Hex()[:16]) || !strings.Contains(subj, own.Hex()[:16]) {
				t.Errorf("%s imports %q", ac.Name, subj)
			}
		}
		if ac.Limits.JetStreamLimits.DiskStorage != 0 || ac.Limits.JetStreamLimits.MemoryStorage != 0 {
			t.Errorf("%s has JetStream of its own", ac.Name)
		}
		if ac.Limits.Conn != natsauth.MaxMemberConnections || ac.Limits.Subs <= 0 {
			t.Errorf("%s may have %d connections and %d subscriptions; want %d and a bound", ac.Name, ac.Limits.Conn, ac.Limits.Subs, natsauth.MaxMemberConnections)
		}
	}
	if accounts != 2 {
		t.Errorf("%d builder accounts, want 2", accounts)
	}
}

// TestRemoteNeedsTLS: a connection to a server off this machine is TLS
// even without a CA (the system's roots then), so that nobody in between
// can talk it down to plain text; loopback may be plain.
func TestRemoteNeedsTLS(t *testing.T) {
	for url, want := range map[string]bool{
		"nats://127.0.0.1:4222":                      false,
		"nats://localhost:4222,nats://[::1]:4222":    false,
		"nats://farm.example.org:4222":               true,
		"nats://10.0.0.1:4222":                       true,
		"nats://127.0.0.1:4222,nats://10.0.0.1:4222": true,
		"farm.example.org:4222":                      true,
	} {
		opts, err := natsq.AuthOptions(url, natsq.Config{})
		if err != nil {
			t.Fatal(err)
		}
		o := nats.GetDefaultOptions()
		for _, opt := range opts {
			if err := opt(&o); err != nil {
				t.Fatal(err)
			}
		}
		if o.Secure != want {
			t.Errorf("AuthOptions(%q): TLS required = %v, want %v", url, o.Secure, want)
		}
	}
}
