package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
)

// TestBuilderCommands enrolls, lists and removes builders as an operator
// would, with every error an operator can make.
func TestBuilderCommands(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "alice").must(t, "keygen alice")
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "bob").must(t, "keygen bob")

	r := runLantern(t, dir, nil, "builder", "add", "alice", "alice.pub", "--data", data).must(t, "builder add alice")
	if !strings.Contains(r.stdout, "alice.creds") {
		t.Errorf("builder add says %q; want where the credentials are", r.stdout)
	}
	creds := readFile(t, filepath.Join(dir, "alice.creds"))
	if fi, _ := os.Stat(filepath.Join(dir, "alice.creds")); fi.Mode().Perm() != 0o600 {
		t.Errorf("alice.creds has mode %v, want 0600", fi.Mode().Perm())
	}
	tok, err := jwt.ParseDecoratedJWT([]byte(creds))
	if err != nil {
		t.Fatalf("alice.creds is not a NATS credentials file: %v", err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		t.Fatalf("alice.creds: %v", err)
	}
	if uc.Name != "alice" || len(uc.Pub.Allow) == 0 || len(uc.Sub.Allow) != 1 {
		t.Errorf("alice's user: name %q, publish %v, subscribe %v", uc.Name, uc.Pub.Allow, uc.Sub.Allow)
	}
	for _, subj := range uc.Pub.Allow {
		if strings.HasPrefix(subj, "$JS.API.STREAM.CREATE") || strings.HasPrefix(subj, "$JS.API.CONSUMER.CREATE") || subj == ">" || strings.HasPrefix(subj, "lantern.jobs") {
			t.Errorf("alice may publish to %q", subj)
		}
	}

	runLantern(t, dir, nil, "builder", "add", "alice", "bob.pub", "--data", data, "--out", "x.creds").fails(t, "a name taken", 1, "enrolled already")
	runLantern(t, dir, nil, "builder", "add", "bobby", "alice.pub", "--data", data, "--out", "y.creds").fails(t, "a key taken", 1, "enrolled already")
	runLantern(t, dir, nil, "builder", "add", "Bob/../x", "bob.pub", "--data", data).fails(t, "a bad name", 2, "builder name")
	runLantern(t, dir, nil, "builder", "add", "bob", "--data", data).fails(t, "no key", 2, "NAME and KEY.pub")
	runLantern(t, dir, nil, "builder", "add", "bob", "alice.creds", "--data", data).fails(t, "not a key", 1, "public key")
	putFile(t, dir, "bob.creds", "mine")
	runLantern(t, dir, nil, "builder", "add", "bob", "bob.pub", "--data", data).fails(t, "credentials there", 1, "exists")
	if got := readFile(t, filepath.Join(dir, "bob.creds")); got != "mine" {
		t.Errorf("bob.creds was overwritten: %q", got)
	}
	runLantern(t, dir, nil, "builder", "add", "bob", "bob.pub", "--data", data, "--out", "b.creds").must(t, "builder add bob")

	r = runLantern(t, dir, nil, "builder", "list", "--data", data).must(t, "builder list")
	if !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stdout, "bob") || strings.Contains(r.stdout, "revoked") {
		t.Errorf("builder list:\n%s", r.stdout)
	}
	runLantern(t, dir, nil, "builder", "remove", "alice", "--data", data).must(t, "builder remove alice")
	runLantern(t, dir, nil, "builder", "remove", "alice", "--data", data).fails(t, "removed twice", 1, "no builder")
	r = runLantern(t, dir, nil, "builder", "list", "--data", data, "--json").must(t, "builder list --json")
	var list struct {
		Builders []struct {
			Name      string
			Revoked   string
			NATSUsers []string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("builder list --json: %v\n%s", err, r.stdout)
	}
	if len(list.Builders) != 2 || list.Builders[0].Name != "alice" || list.Builders[0].Revoked == "" || list.Builders[1].Revoked != "" {
		t.Errorf("builder list --json after removing alice: %+v", list.Builders)
	}
	if len(list.Builders[0].NATSUsers) != 1 || list.Builders[0].NATSUsers[0] != uc.Subject {
		t.Errorf("alice's NATS users %v, want her credentials' %s", list.Builders[0].NATSUsers, uc.Subject)
	}
	// Enrolled again and removed again: the first revocation stays.
	runLantern(t, dir, nil, "builder", "add", "alice", "alice.pub", "--data", data, "--out", "a2.creds").must(t, "builder add alice again")
	runLantern(t, dir, nil, "builder", "remove", "alice", "--data", data).must(t, "builder remove alice again")
	entries, err := builderRegistry(data).read()
	if err != nil {
		t.Fatal(err)
	}
	_, revoked := enrolled(entries)
	if len(revoked) != 2 {
		t.Errorf("after two removals of alice, %d NATS users revoked, want 2: %v", len(revoked), revoked)
	}
}

// TestSecretsStaySecret: a NATS URL with a password or a token is never
// printed, in errors or logs.
func TestSecretsStaySecret(t *testing.T) {
	dir := t.TempDir()
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "w").must(t, "keygen")
	data := filepath.Join(dir, "data")
	runLantern(t, dir, nil, "builder", "add", "w", "w.pub", "--data", data).must(t, "builder add")
	for _, url := range []string{"nats://bob:hunter2-secret@127.0.0.1:1", "nats://tok3n-secret@127.0.0.1:1", "tls://u:hunter2-secret@127.0.0.1:1,nats://127.0.0.1:2"} {
		r := runLantern(t, dir, pw, "worker", "--nats", url, "--creds", "w.creds", "--key", "w.key", "--claim-key", "w.pub", "--buildkit", "unix:///nonexistent/buildkitd.sock")
		if r.code == 0 {
			t.Errorf("worker --nats %s: exit 0", url)
		}
		if strings.Contains(r.stdout+r.stderr, "secret") || !strings.Contains(r.stderr, "127.0.0.1:1") {
			t.Errorf("worker --nats with a secret in the URL: want an error about NATS without the secret:\n%s%s", r.stdout, r.stderr)
		}
	}
	// No credentials: the command line is wrong, and says what to get.
	runLantern(t, dir, pw, "worker", "--nats", "nats://127.0.0.1:1", "--key", "w.key", "--claim-key", "w.pub").fails(t, "worker without --creds", 2, "lantern builder add")
	runLantern(t, dir, pw, "worker", "--nats", "nats://127.0.0.1:1", "--key", "w.key", "--creds", "w.creds").fails(t, "worker without --claim-key", 2, "--claim-key")
	r := runLantern(t, dir, nil, "scheduler", "--data", data, "--nats", "nats://bob:hunter2-secret@127.0.0.1:1", "--listen", "127.0.0.1:0")
	if r.code == 0 || strings.Contains(r.stdout+r.stderr, "secret") || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("scheduler --nats with a secret: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
