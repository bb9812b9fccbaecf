package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// planted is what a hostile file of a release's dist/ hides in its name or
// its build information: a terminal escape, a carriage return, and a line
// of its own that a CI runner reads as a command.
const planted = "\x1b[2J\r\n::error::planted"

// printedSafely fails t if out, what lantern printed, carries a byte of
// planted as it is.
func printedSafely(t *testing.T, what, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "::") || strings.ContainsAny(line, "\x1b\r") {
			t.Errorf("%s printed %q, which has what a hostile file planted as it is", what, out)
			return
		}
	}
}

// TestRebuildPublishedHostile: a published binary that names the module
// version of stringer but whose h1: hash of it is not the one the Go
// checksum database has is contradicted (exit 3) before anything is signed,
// written or posted; and what such a file (or its name) says is printed
// escaped, whatever it is.
func TestRebuildPublishedHostile(t *testing.T) {
	const realSum = "h1:BgcpHewrV5AUp2G9MebG4XPFI1E2W41zU1SaqVA9vJY=" // golang.org/x/tools v0.30.0
	bin, err := os.ReadFile(hostStringerInstall(t, "1.24.4", "linux", "amd64"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bin, []byte(realSum)) {
		t.Fatalf("stringer's build information has no %s", realSum)
	}
	// The same length, so that the build information still reads.
	withSum := func(sum string) []byte {
		sum += strings.Repeat("A", len(realSum)-len(sum)-1) + "="
		return bytes.ReplaceAll(bin, []byte(realSum), []byte(sum))
	}
	dir := t.TempDir()
	dist := filepath.Join(dir, "dist")
	if err := os.Mkdir(dist, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(name string, b []byte) string {
		f := filepath.Join(dist, name)
		if err := os.WriteFile(f, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return f
	}
	other := put("stringer-other-sum", withSum("h1:"))
	hostile := put("stringer"+planted, withSum("h1:\x1b[2J\r"))

	// Two files of one label, named as an attacker names them.
	_, err = readPublished([]string{put("a"+planted, bin), put("b"+planted, bin)}, "", "")
	if !isUsage(err) {
		t.Fatalf("readPublished(two files of one label) = %v, want a usage error", err)
	}
	printedSafely(t, "readPublished(two files of one label)", err.Error())

	var requests atomic.Int32
	farm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1) }))
	defer farm.Close()
	pw := []string{"LANTERN_PASSWORD="}
	runLantern(t, dir, pw, "keygen", "--output-key-prefix", "ci").must(t, "keygen")
	sumdb := "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8 https://proxy.golang.org/sumdb/sum.golang.org"
	for _, tc := range []struct{ name, file string }{{"another hash", other}, {"a hostile hash and name", hostile}} {
		t.Run(tc.name, func(t *testing.T) {
			claim := filepath.Join(dir, "claim.json")
			r := runLantern(t, dir, pw, "rebuild", "--published", tc.file, "--goproxy", "https://proxy.golang.org", "--gosumdb", sumdb,
				"--farm", farm.URL, "--key", "ci.key", "--data", filepath.Join(dir, "data"), "-o", claim, "--wait", "1m")
			r.fails(t, "rebuild --published of "+tc.name, 3, "the Go checksum database says that module version is "+realSum)
			printedSafely(t, "rebuild --published of "+tc.name, r.stdout+r.stderr)
			if _, err := os.Stat(claim); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("rebuild --published of %s wrote a claim (stat: %v)", tc.name, err)
			}
		})
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("contradicted binaries made %d requests to the farm, want none", n)
	}
}
