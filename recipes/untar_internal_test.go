package recipes

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func writeTar(t *testing.T, gz bool, entries ...entry) string {
	t.Helper()
	var buf bytes.Buffer
	var tw *tar.Writer
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		tw = tar.NewWriter(zw)
	} else {
		tw = tar.NewWriter(&buf)
	}
	for _, e := range entries {
		typ, mode := e.typ, e.mode
		if typ == 0 {
			typ = tar.TypeReg
		}
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Linkname: e.link, ModTime: time.Unix(1700000000, 0)}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	if zw != nil {
		zw.Close()
	}
	f := filepath.Join(t.TempDir(), "src.tar")
	if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestUntar(t *testing.T) {
	f := writeTar(t, true,
		entry{name: "hello-1.0/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "hello-1.0/configure", body: "#!/bin/sh\n", mode: 0o4755},
		entry{name: "hello-1.0/src/main.c", body: "int main(){}\n"},
		entry{name: "hello-1.0/link", typ: tar.TypeSymlink, link: "src/main.c"},
		entry{name: "hello-1.0/hard", typ: tar.TypeLink, link: "hello-1.0/src/main.c"},
		entry{name: "hello-1.0/fifo", typ: tar.TypeFifo},
	)
	dir := filepath.Join(t.TempDir(), "src")
	if err := untar(f, dir, 1<<20); err != nil {
		t.Fatalf("untar: %v", err)
	}
	root, err := stripTopDir(dir)
	if err != nil || root != filepath.Join(dir, "hello-1.0") {
		t.Fatalf("stripTopDir = %q, %v; want the one top-level directory", root, err)
	}
	fi, err := os.Stat(filepath.Join(root, "configure"))
	if err != nil || fi.Mode() != 0o755 || !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
		t.Errorf("configure: %v %v, want mode 0755 (no set-uid) and the tarball's time", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "link")); err != nil || string(b) != "int main(){}\n" {
		t.Errorf("symbolic link: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "hard")); err != nil || string(b) != "int main(){}\n" {
		t.Errorf("hard link: %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "fifo")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a FIFO was made: %v", err)
	}
}

func TestUntarSizeCap(t *testing.T) {
	f := writeTar(t, true, entry{name: "a", body: strings.Repeat("x", 600)}, entry{name: "b", body: strings.Repeat("y", 600)})
	err := untar(f, filepath.Join(t.TempDir(), "src"), 1000)
	if !errors.Is(err, ErrSourceTooLarge) {
		t.Fatalf("untar = %v, want %v", err, ErrSourceTooLarge)
	}
}
