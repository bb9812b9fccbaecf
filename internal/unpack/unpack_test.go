package unpack_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanternfarm/lantern/internal/unpack"
)

type entry struct {
	name, body, link string
	typ              byte
}

// stream returns a tar stream of entries, as a build's export sends one.
func stream(t *testing.T, entries ...entry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Linkname: e.link, ModTime: time.Unix(1700000000, 0)}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

var errTooLarge = errors.New("too large")

func tooLarge(int64) error { return errTooLarge }

func TestTar(t *testing.T) {
	dir := t.TempDir()
	r := stream(t,
		entry{name: "usr/", typ: tar.TypeDir},
		entry{name: "usr/bin/hello", body: "hello\n"},
		entry{name: "usr/bin/hi", typ: tar.TypeSymlink, link: "hello"},
	)
	if err := unpack.Tar(r, dir, 1<<20, tooLarge); err != nil {
		t.Fatalf("Tar() = %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "usr", "bin", "hi")); err != nil || string(b) != "hello\n" {
		t.Errorf("usr/bin/hi = %q, %v; want %q", b, err, "hello\n")
	}
}

// TestTarStaysInside sends Tar, as a hostile build's export could, the
// classic ways out of a directory: none may write a file outside it.
func TestTarStaysInside(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []entry
	}{
		{"dot-dot", []entry{{name: "../escaped", body: "x"}}},
		{"dot-dot inside", []entry{{name: "a/../../escaped", body: "x"}}},
		{"absolute", []entry{{name: "/escaped", body: "x"}}},
		{"through a symlink", []entry{{name: "up", typ: tar.TypeSymlink, link: ".."}, {name: "up/escaped", body: "x"}}},
		{"through an absolute symlink", []entry{{name: "up", typ: tar.TypeSymlink, link: "PARENT"}, {name: "up/escaped", body: "x"}}},
		{"hard link out", []entry{{name: "h", typ: tar.TypeLink, link: "../outside"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			if err := os.WriteFile(filepath.Join(parent, "outside"), []byte("secret"), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(parent, "out")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range tc.entries {
				tc.entries[i].link = strings.ReplaceAll(tc.entries[i].link, "PARENT", parent)
			}
			if err := unpack.Tar(stream(t, tc.entries...), dir, 1<<20, tooLarge); err == nil {
				t.Errorf("Tar() = nil, want an error")
			}
			if _, err := os.Lstat(filepath.Join(parent, "escaped")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a file was written outside the directory (%v)", err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "h")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a hard link to a file outside the directory was made (%v)", err)
			}
		})
	}
}

// TestTarCap: past max bytes of files, Tar stops with tooLarge's error
// before it writes the file that would pass it.
func TestTarCap(t *testing.T) {
	dir := t.TempDir()
	r := stream(t, entry{name: "a", body: strings.Repeat("x", 600)}, entry{name: "b", body: strings.Repeat("y", 600)})
	if err := unpack.Tar(r, dir, 1000, tooLarge); !errors.Is(err, errTooLarge) {
		t.Fatalf("Tar() = %v, want tooLarge's error", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file past the cap was written (%v)", err)
	}
}
