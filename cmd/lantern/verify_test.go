package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyRebuilderdSample: rebuilderd's real evidence (an Arch Linux
// package, the in-toto link reproducible.archlinux.org signed for it, its
// key) through lantern verify: its key trusted → verified (0); the copy of
// the link with broken signatures → 1, "signature does not verify"; its key
// not trusted → 1; another artefact → 1.
func TestVerifyRebuilderdSample(t *testing.T) {
	dir := t.TempDir()
	abs := func(p string) string {
		a, err := filepath.Abs(filepath.Join("..", "..", "testdata", "rebuilderd", p))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	pkg := abs("filesystem-2025.10.12-1-any.pkg.tar.zst")
	link := abs("filesystem-2025.10.12-1-any.in-toto.link")
	broken := abs("filesystem-2025.10.12-1-any.INVALID.in-toto.link")
	key := abs("reproducible-archlinux.pub")

	r := runLantern(t, dir, nil, "verify", "--trust", key, "--evidence", link, pkg).must(t, "verify with the rebuilder's key")
	if !strings.Contains(r.stdout, "verified, 1 of 1") || !strings.Contains(r.stdout, "+ "+link+": trusted") {
		t.Errorf("verify printed:\n%s", r.stdout)
	}
	r = runLantern(t, dir, nil, "verify", "--trust", key, "--evidence", broken, pkg)
	r.fails(t, "verify with the broken link", 1, "not verified")
	if !strings.Contains(r.stdout, "signature does not verify") {
		t.Errorf("verify of the broken link does not say why:\n%s", r.stdout)
	}
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "other").must(t, "keygen")
	r = runLantern(t, dir, nil, "verify", "--trust", "other.pub", "--evidence", link, pkg)
	r.fails(t, "verify without the rebuilder's key", 1, "not verified")
	if !strings.Contains(r.stdout, "untrusted key") {
		t.Errorf("verify with another key does not say why:\n%s", r.stdout)
	}
	putFile(t, dir, "other.bin", "not the package")
	r = runLantern(t, dir, nil, "verify", "--trust", key, "--evidence", link, "other.bin")
	r.fails(t, "verify of another artefact", 1, "not verified")
	if !strings.Contains(r.stdout, "another artefact") {
		t.Errorf("verify of another artefact does not say why:\n%s", r.stdout)
	}
	runLantern(t, dir, nil, "verify", "--trust", key, "--evidence", link, "--threshold", "2", pkg).fails(t, "verify with threshold 2", 1, "1 of 2")
	runLantern(t, dir, nil, "verify", "--evidence", link, pkg).fails(t, "verify without --trust", 2, "give --trust KEY.pub")
	runLantern(t, dir, nil, "verify", "--trust", key, pkg).fails(t, "verify without --evidence", 2, "give --farm URL")
}

// TestVerifyLanternAttestations: Lantern's own attestations (as lantern attest
// sign and the workers write them) through lantern verify: two trusted
// builders agree → 0 with --threshold 2, 1 with 3; a key not in the policy
// never counts, whatever it says; a trusted builder that signs other bytes
// for the same source and label → 3, naming it.
func TestVerifyLanternAttestations(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []string{"a", "b", "stranger"} {
		runLantern(t, dir, pw, "keygen", "--output-key-prefix", k).must(t, "keygen "+k)
	}
	putFile(t, dir, "art", "the artefact")
	putFile(t, dir, "other", "other bytes")
	if err := os.Mkdir(filepath.Join(dir, "ev"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := "sha256:" + sha256hex("the source")
	sign := func(key, artefact, out string) {
		t.Helper()
		runLantern(t, dir, pw, "attest", "sign", artefact, "--key", key+".key", "--source", "example.org/tool@v1", "--source-digest", src, "--label", "tool", "-o", out).must(t, "attest sign "+out)
	}
	sign("a", "art", "ev/a.json")
	sign("b", "art", "ev/b.json")
	sign("stranger", "art", "ev/stranger.json")
	r := runLantern(t, dir, nil, "verify", "--trust", "a.pub", "--trust", "b.pub", "--threshold", "2", "--evidence", "ev", "art").must(t, "verify, two trusted builders")
	if !strings.Contains(r.stdout, "verified, 2 of 2") || !strings.Contains(r.stdout, "ev/stranger.json: untrusted key") {
		t.Errorf("verify printed:\n%s", r.stdout)
	}
	runLantern(t, dir, nil, "verify", "--trust", "a.pub", "--trust", "b.pub", "--threshold", "3", "--evidence", "ev", "art").fails(t, "verify, threshold 3", 1, "2 of 3")
	runLantern(t, dir, nil, "verify", "--trust", "a.pub", "--evidence", "ev", "art").must(t, "verify, one key trusted, threshold 1")
	// The stranger's evidence never counts.
	runLantern(t, dir, nil, "verify", "--trust", "a.pub", "--evidence", "ev/stranger.json", "art").fails(t, "verify, the stranger's evidence", 1, "0 of 1")
	// A trusted builder got other bytes for the same source and label.
	sign("b", "other", "ev/b-other.json")
	r = runLantern(t, dir, nil, "verify", "--trust", "a.pub", "--trust", "b.pub", "--evidence", "ev", "art")
	r.fails(t, "verify, contradicted", 3, "contradicted")
	if !strings.Contains(r.stdout, "ev/b-other.json: contradicts") {
		t.Errorf("verify does not name the contradiction:\n%s", r.stdout)
	}
}
