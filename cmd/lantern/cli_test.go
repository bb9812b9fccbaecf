package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var pw = []string{"LANTERN_PASSWORD=test password"}

func TestHelpAndUsage(t *testing.T) {
	dir := t.TempDir()
	r := runLantern(t, dir, nil, "help").must(t, "help")
	for _, c := range []string{"keygen", "claim sign", "claim verify", "attest sign", "attest verify", "scheduler"} {
		if !strings.Contains(r.stdout, c) {
			t.Errorf("help does not list %q:\n%s", c, r.stdout)
		}
	}
	for _, args := range [][]string{{"keygen", "--help"}, {"attest", "sign", "-h"}, {"help", "attest", "verify"}, {"attest", "--help"}} {
		r := runLantern(t, dir, nil, args...).must(t, strings.Join(args, " "))
		if !strings.Contains(r.stdout, "lantern") || r.stderr != "" {
			t.Errorf("%q: stdout %q stderr %q, want help on stdout", args, r.stdout, r.stderr)
		}
	}
	runLantern(t, dir, nil).fails(t, "no command", 2, "no command given")
	runLantern(t, dir, nil, "frobnicate").fails(t, "unknown command", 2, `unknown command "frobnicate"`)
	runLantern(t, dir, nil, "attest", "frob").fails(t, "unknown subcommand", 2, `"attest" has attest sign, attest verify`)
	runLantern(t, dir, nil, "keygen", "--bogus").fails(t, "unknown flag", 2, "flag provided but not defined: -bogus")
	runLantern(t, dir, nil, "attest", "verify", "x.json").fails(t, "no --key", 2, "--key is required")
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	runLantern(t, dir, nil, "keygen").fails(t, "keygen without a password", 1, "set LANTERN_PASSWORD")
	if _, err := os.Stat(filepath.Join(dir, "lantern.key")); !os.IsNotExist(err) {
		t.Fatalf("keygen that failed left a key file behind (stat: %v)", err)
	}
	r := runLantern(t, dir, pw, "keygen").must(t, "keygen")
	id := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Errorf("keygen printed %q, want the key id", id)
	}
	priv := readFile(t, filepath.Join(dir, "lantern.key"))
	fi, err := os.Stat(filepath.Join(dir, "lantern.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lantern.key mode = %v, %v; want 0600", fi.Mode(), err)
	}
	runLantern(t, dir, pw, "keygen").fails(t, "keygen over an existing key", 1, "lantern.key exists")
	if readFile(t, filepath.Join(dir, "lantern.key")) != priv {
		t.Fatal("keygen overwrote an existing key")
	}
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "second").must(t, "keygen --output-key-prefix")
	// The wrong password is named as the problem when signing.
	putFile(t, dir, "art", "artefact")
	runLantern(t, dir, []string{"LANTERN_PASSWORD=wrong"}, "attest", "sign", "--key", "lantern.key",
		"--source", "a@1", "--source-digest", "sha256:"+strings.Repeat("ab", 32), "--label", "a", "art").
		fails(t, "sign with the wrong password", 1, "wrong password")
}

func TestClaimSignVerify(t *testing.T) {
	dir := t.TempDir()
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "maint").must(t, "keygen")
	putFile(t, dir, "hello-1.2.0.tar.gz", "source bytes")
	putFile(t, dir, "hello", "binary bytes")
	putFile(t, dir, "build.json", `{"image": "registry.example/builder@sha256:`+strings.Repeat("cd", 32)+`", "commands": ["make"], "outputs": {"hello-linux-amd64": "hello"}}`)
	runLantern(t, dir, pw, "claim", "sign", "--key", "maint.key", "--source", "example.org/hello@v1.2.0",
		"--source-file", "hello-1.2.0.tar.gz", "--fetch", "https://example.org/hello-1.2.0.tar.gz",
		"--recipe", "generic", "--build", "build.json", "--artefact", "hello-linux-amd64=hello", "-o", "claim.json").must(t, "claim sign")
	r := runLantern(t, dir, nil, "claim", "verify", "--key", "maint.pub", "--json", "claim.json").must(t, "claim verify")
	var got struct {
		Kind  string
		Claim struct {
			Source    struct{ Name, Version, Digest string }
			Fetch     string
			Artefacts map[string]string
			Build     struct{ Commands []string }
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("claim verify --json printed %q: %v", r.stdout, err)
	}
	if got.Kind != "source" || got.Claim.Source.Name != "example.org/hello" || got.Claim.Source.Version != "v1.2.0" ||
		got.Claim.Source.Digest != "sha256:"+sha256hex("source bytes") || got.Claim.Artefacts["hello-linux-amd64"] != "sha256:"+sha256hex("binary bytes") ||
		len(got.Claim.Build.Commands) != 1 || got.Claim.Build.Commands[0] != "make" {
		t.Errorf("verified claim = %+v", got)
	}

	putFile(t, dir, "bad.json", `{"image": "registry.example/builder@sha256:`+strings.Repeat("cd", 32)+`", "command": ["make"], "outputs": {"a": "a"}}`)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no source", []string{"--key", "maint.key", "--source-digest", "sha256:" + sha256hex("x")}, "--source is required"},
		{"no version", []string{"--key", "maint.key", "--source", "hello", "--source-digest", "sha256:" + sha256hex("x")}, "want NAME@VERSION"},
		{"bad digest", []string{"--key", "maint.key", "--source", "a@1", "--source-digest", "md5:abc"}, `--source-digest: digest "md5:abc"`},
		{"no digest", []string{"--key", "maint.key", "--source", "a@1"}, "--source-digest or --source-file is required"},
		{"bad artefact", []string{"--key", "maint.key", "--source", "a@1", "--source-digest", "sha256:" + sha256hex("x"), "--artefact", "nolabel"}, "want LABEL=sha256:<hex> or LABEL=FILE"},
		{"relative fetch", []string{"--key", "maint.key", "--source", "a@1", "--source-digest", "sha256:" + sha256hex("x"), "--fetch", "a.tgz"}, "want an absolute URL"},
		{"no key", []string{"--source", "a@1", "--source-digest", "sha256:" + sha256hex("x")}, "--key is required"},
		{"generic without a spec", []string{"--key", "maint.key", "--source", "a@1", "--source-digest", "sha256:" + sha256hex("x"), "--fetch", "https://example.org/a.tgz", "--recipe", "generic"}, "build: missing"},
		{"spec with a typo", []string{"--key", "maint.key", "--source", "a@1", "--source-digest", "sha256:" + sha256hex("x"), "--fetch", "https://example.org/a.tgz", "--recipe", "generic", "--build", "bad.json"}, `unknown field "command"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			runLantern(t, dir, pw, append([]string{"claim", "sign"}, tt.args...)...).fails(t, tt.name, 2, tt.want)
		})
	}
}

func TestAttestVerifyFailures(t *testing.T) {
	dir := t.TempDir()
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "a").must(t, "keygen a")
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "b").must(t, "keygen b")
	putFile(t, dir, "art", "artefact")
	putFile(t, dir, "other", "another artefact")
	// Flags may follow the artefact, as people type them.
	runLantern(t, dir, pw, "attest", "sign", "art", "--key", "a.key", "--source", "x@1", "--source-digest", "sha256:"+sha256hex("src"), "--label", "x", "-o", "att.json").must(t, "attest sign")
	r := runLantern(t, dir, nil, "attest", "verify", "--key", "a.pub", "att.json", "art").must(t, "attest verify")
	if !strings.Contains(r.stdout, "Verified: builder sha256:") || !strings.Contains(r.stdout, "x@1") {
		t.Errorf("attest verify printed %q", r.stdout)
	}
	runLantern(t, dir, nil, "attest", "verify", "--key", "b.pub", "att.json", "art").fails(t, "other key", 1, "signature does not verify")
	runLantern(t, dir, nil, "attest", "verify", "--key", "a.pub", "att.json", "other").fails(t, "other artefact", 1, "artefact is not a subject")
	runLantern(t, dir, nil, "attest", "verify", "--key", "a.key", "att.json").fails(t, "private key as --key", 1, "give the .pub file")
	runLantern(t, dir, nil, "attest", "verify", "--key", "a.pub", "missing.json").fails(t, "missing envelope", 1, "no such file")

	// One changed byte of the payload, as it sits in the file.
	var env map[string]any
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "att.json"))), &env); err != nil {
		t.Fatal(err)
	}
	p := []byte(env["payload"].(string))
	p[10] = otherChar(p[10])
	env["payload"] = string(p)
	b, _ := json.Marshal(env)
	putFile(t, dir, "tampered.json", string(b))
	runLantern(t, dir, nil, "attest", "verify", "--key", "a.pub", "tampered.json").fails(t, "tampered payload", 1, "signature does not verify")
	putFile(t, dir, "truncated.json", string(b[:len(b)/2]))
	runLantern(t, dir, nil, "attest", "verify", "--key", "a.pub", "truncated.json").fails(t, "truncated", 1, "malformed envelope")
}

func otherChar(c byte) byte {
	if c == 'A' {
		return 'B'
	}
	return 'A'
}
