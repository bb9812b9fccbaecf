// Package goproxytest lays made-up Go modules out as a file GOPROXY, for
// tests that build binaries with the host's go command.
package goproxytest

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

// FileProxy lays modules (module path → file name → text) out as a file
// GOPROXY, each at v1.0.0, and returns its URL and each module's h1: hash.
func FileProxy(t testing.TB, modules map[string]map[string]string) (string, map[string]string) {
	t.Helper()
	root := t.TempDir()
	sums := map[string]string{}
	write := func(dir string, files map[string]string) {
		for name, text := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for path, files := range modules {
		src := t.TempDir()
		write(src, files)
		dir := filepath.Join(root, path, "@v")
		write(dir, map[string]string{
			"list":        "v1.0.0\n",
			"v1.0.0.info": `{"Version":"v1.0.0","Time":"2025-01-01T00:00:00Z"}`,
			"v1.0.0.mod":  files["go.mod"],
		})
		zf := filepath.Join(dir, "v1.0.0.zip")
		w, err := os.Create(zf)
		if err != nil {
			t.Fatal(err)
		}
		if err := modzip.CreateFromDir(w, module.Version{Path: path, Version: "v1.0.0"}, src); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if sums[path], err = dirhash.HashZip(zf, dirhash.Hash1); err != nil {
			t.Fatal(err)
		}
	}
	return "file://" + filepath.ToSlash(root), sums
}
