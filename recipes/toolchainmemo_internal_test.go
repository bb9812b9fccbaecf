package recipes

import (
	"archive/zip"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/lanternfarm/lantern"
)

// fakeFiles are fakeToolchain's files.
var fakeFiles = map[string]string{
	"bin/go":                       "#!go\n",
	"bin/gofmt":                    "#!gofmt\n",
	"pkg/tool/linux_amd64/compile": "#!compile\n",
	"lib/time/go_linux_amd64_exec": "#!exec\n",
	"src/_go.mod":                  "module std\n",
	"src/fmt/print.go":             "package fmt\n",
}

// fakeToolchain lays out a small toolchain module in a module cache of its
// own, as the go command leaves one: its zip under cache/download, the
// unpacked tree beside, without execute bits or go.mod copies. It returns
// a preparer of that module cache and what go mod download would say of
// the toolchain.
func fakeToolchain(t *testing.T) (*preparer, *modDownload) {
	t.Helper()
	const mod, version = "example.com/toolchain", "v0.0.1-go1.24.4.linux-amd64"
	modCache := t.TempDir()
	m := &modDownload{Path: mod, Version: version,
		Dir: filepath.Join(modCache, mod+"@"+version),
		Zip: filepath.Join(modCache, "cache", "download", mod, "@v", version+".zip")}
	writeZip(t, m.Zip, mod+"@"+version, fakeFiles)
	for name, data := range fakeFiles {
		name = filepath.Join(m.Dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(data), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	sums, err := zipSums(m.Zip)
	if err != nil {
		t.Fatal(err)
	}
	m.Sum = hash1(sums) // what the checksum database says
	t.Cleanup(func() { checkedToolchains.forget(modCache, mod, version) })
	return &preparer{modCache: modCache, log: slog.New(slog.DiscardHandler)}, m
}

func writeZip(t *testing.T, name, prefix string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(name + ".tmp")
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for n, data := range files {
		w, err := zw.Create(prefix + "/" + n)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(name+".tmp", name); err != nil {
		t.Fatal(err)
	}
}

// rewrite writes data to name in place, with its modification time put
// back: only its ctime, which no process sets, tells.
func rewrite(t *testing.T, name, data string) {
	t.Helper()
	info, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(name, 0o644)
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(name, info.Mode())
	if err := os.Chtimes(name, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// TestCheckedToolchainMemo: a toolchain checked once in this process is
// checked again for the next build from what changed since, by the files'
// stamps — and a cache entry changed since, its tree or its zip, in place
// with the size and the modification time kept, replaced, or both made to
// agree with each other, is refused as a full check refuses it.
func TestCheckedToolchainMemo(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("file stamps are read on Linux")
	}
	old := racyWindow
	racyWindow = 0 // the files below are made just before the check
	t.Cleanup(func() { racyWindow = old })

	check := func(t *testing.T, p *preparer, m *modDownload) (GoToolchain, error) {
		t.Helper()
		time.Sleep(20 * time.Millisecond) // a tick of the kernel's file clock
		return p.toolchain(m, nil)
	}

	t.Run("unchanged", func(t *testing.T) {
		p, m := fakeToolchain(t)
		first, err := check(t, p, m)
		if err != nil {
			t.Fatalf("first check: %v", err)
		}
		if first.zipStamp == nil || first.snapshot == nil || !first.snapshot.all {
			t.Fatalf("first check: zip stamp %v, snapshot %+v; want both, of every file", first.zipStamp, first.snapshot)
		}
		if got := checkedToolchains.get(p.modCache, m.Path, m.Version); got == nil || got.Tree != first.Tree {
			t.Fatalf("the check left no record of the toolchain: %+v", got)
		}
		again, err := check(t, p, m)
		if err != nil || again.Tree != first.Tree || again.Zip != first.Zip {
			t.Fatalf("second check = %s %s, %v; want %s %s", again.Tree, again.Zip, err, first.Tree, first.Zip)
		}
		// The record is what spares the reading: a made-up one shows. (A
		// record is only ever made by a check, in this process's memory.)
		forged := *checkedToolchains.get(p.modCache, m.Path, m.Version)
		forged.Tree = "h1:forged"
		checkedToolchains.put(p.modCache, forged)
		if _, err := check(t, p, m); !errors.Is(err, lantern.ErrDigestMismatch) {
			t.Fatalf("check with a record whose tree hash was made up = %v; want the record used, and a mismatch", err)
		}
		// A failed check forgets the record: the next one reads all.
		if got := checkedToolchains.get(p.modCache, m.Path, m.Version); got != nil {
			t.Fatalf("record after a failed check: %+v, want none", got)
		}
		if _, err := check(t, p, m); err != nil {
			t.Fatalf("full check after the record was dropped: %v", err)
		}
	})

	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, m *modDownload)
	}{
		{"a file of the tree written in place", func(t *testing.T, m *modDownload) {
			rewrite(t, filepath.Join(m.Dir, "src", "fmt", "print.go"), "package fmX\n")
		}},
		{"a file of the tree replaced", func(t *testing.T, m *modDownload) {
			name := filepath.Join(m.Dir, "bin", "go")
			if err := os.WriteFile(name+".new", []byte("#!evil\n"), 0o555); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(name+".new", name); err != nil {
				t.Fatal(err)
			}
		}},
		{"a file added to the tree", func(t *testing.T, m *modDownload) {
			if err := os.WriteFile(filepath.Join(m.Dir, "src", "fmt", "evil.go"), []byte("package fmt\n"), 0o444); err != nil {
				t.Fatal(err)
			}
		}},
		{"an _go.mod changed (and its go.mod copy made from it)", func(t *testing.T, m *modDownload) {
			rewrite(t, filepath.Join(m.Dir, "src", "_go.mod"), "module xtd\n")
		}},
		{"the zip alone changed", func(t *testing.T, m *modDownload) {
			// The tree is whole, but the zip the attestation names is not
			// the checksum database's.
			info, _ := os.Stat(m.Zip)
			files := maps.Clone(fakeFiles)
			files["src/fmt/print.go"] = "package fmX\n"
			writeZip(t, m.Zip, m.Path+"@"+m.Version, files)
			os.Chtimes(m.Zip, info.ModTime(), info.ModTime())
		}},
		{"the zip and the tree changed alike", func(t *testing.T, m *modDownload) {
			// A tree that matches its zip, but not the checksum database.
			rewrite(t, filepath.Join(m.Dir, "src", "fmt", "print.go"), "package fmX\n")
			info, _ := os.Stat(m.Zip)
			files := maps.Clone(fakeFiles)
			files["src/fmt/print.go"] = "package fmX\n"
			writeZip(t, m.Zip, m.Path+"@"+m.Version, files)
			os.Chtimes(m.Zip, info.ModTime(), info.ModTime())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, m := fakeToolchain(t)
			if _, err := check(t, p, m); err != nil {
				t.Fatalf("first check: %v", err)
			}
			tc.tamper(t, m)
			_, err := check(t, p, m)
			if !errors.Is(err, lantern.ErrDigestMismatch) {
				t.Fatalf("check after the tampering = %v; want lantern.ErrDigestMismatch", err)
			}
			t.Logf("refused: %v", err)
			if got := checkedToolchains.get(p.modCache, m.Path, m.Version); got != nil {
				t.Errorf("the refused toolchain is still on record")
			}
			// And as a full check would: without a record.
			if _, err := check(t, p, m); !errors.Is(err, lantern.ErrDigestMismatch) {
				t.Errorf("full check after the tampering = %v; want lantern.ErrDigestMismatch", err)
			}
		})
	}
}

// TestFetchedStampsNotRacy: the stamps a toolchain is sent to BuildKit
// under, before it is checked, vouch for what was sent only if no file was
// changed within racyWindow before they were taken: a file changed again
// in the same tick of the kernel's file clock keeps its ctime, so bytes
// sent from it and then put back would be named by the stamps the check
// later finds, and BuildKit would reuse the copy of bytes nobody checked.
// Here every file was changed just before the send (racy then) and the
// check comes long after (racyWindow 0 by then): the send's key must not
// be the check's.
func TestFetchedStampsNotRacy(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("file stamps are read on Linux")
	}
	old := racyWindow
	t.Cleanup(func() { racyWindow = old })
	for _, memo := range []bool{false, true} {
		racyWindow = 0
		p, m := fakeToolchain(t)
		if memo {
			// With a record of an earlier check, whose files the check
			// does not read again: the stamps are what vouches.
			if _, err := p.toolchain(m, nil); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond) // a tick of the kernel's file clock
		rewrite(t, filepath.Join(m.Dir, "src", "fmt", "print.go"), "package fmt\n")
		racyWindow = time.Hour // the change is recent at the send ...
		var sent []GoToolchain
		fetched := func(tc GoToolchain) {
			sent = append(sent, tc)
			racyWindow = 0 // ... and long past at the check
		}
		checked, err := p.toolchain(m, fetched)
		if err != nil {
			t.Fatalf("check: %v", err)
		}
		if len(sent) == 0 {
			continue // not sent early: the build sends it under the check's key
		}
		if checked.snapshot == nil || !checked.snapshot.all {
			t.Fatalf("the check vouches for no stamps: the test shows nothing")
		}
		for _, s := range sent {
			if s.sourceKey() == checked.sourceKey() {
				t.Errorf("memo %v: the toolchain was sent under the key the check vouches for, with a file changed just before the send: %s", memo, s.sourceKey())
			}
		}
	}

	// Files changed long before the send are sent under the key the check
	// vouches for: the copy sent early is the build's.
	racyWindow = 0
	p, m := fakeToolchain(t)
	time.Sleep(20 * time.Millisecond)
	var sent []GoToolchain
	checked, err := p.toolchain(m, func(tc GoToolchain) { sent = append(sent, tc) })
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if len(sent) != 1 || sent[0].sourceKey() != checked.sourceKey() {
		t.Errorf("sent %d times, under %v; want once, under the check's key %s", len(sent), sent, checked.sourceKey())
	}
}

// TestCheckedToolchainSwappedDirectory: a directory of the tree swapped,
// between the walk that takes the files' stamps and the reading of them,
// for one holding the right files, and swapped back after, leaves the
// wrong files with the stamps the walk took — and renaming a directory
// changes no file's stamp. The check must not vouch for those stamps with
// the sums of the files it read instead: the next check, which reads no
// file whose stamp it knows, would pass the wrong tree.
func TestCheckedToolchainSwappedDirectory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("file stamps are read on Linux")
	}
	old := racyWindow
	racyWindow = 0
	t.Cleanup(func() { racyWindow = old; beforeHashForTest = nil })
	p, m := fakeToolchain(t)
	fmtDir := filepath.Join(m.Dir, "src", "fmt")
	good := filepath.Join(t.TempDir(), "fmt")
	if err := os.MkdirAll(good, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(good, "print.go"), []byte(fakeFiles["src/fmt/print.go"]), 0o444); err != nil {
		t.Fatal(err)
	}
	rewrite(t, filepath.Join(fmtDir, "print.go"), "package fmX\n") // the wrong file, in place
	time.Sleep(20 * time.Millisecond)
	swap := func(from, to string) {
		t.Helper()
		if err := os.Rename(fmtDir, to); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(from, fmtDir); err != nil {
			t.Fatal(err)
		}
	}
	beforeHashForTest = func() {
		beforeHashForTest = nil
		swap(good, fmtDir+".wrong") // the right files, read in its place
	}
	_, first := p.toolchain(m, nil)
	if beforeHashForTest != nil {
		t.Fatal("the check read no file: the test shows nothing")
	}
	swap(fmtDir+".wrong", good) // the wrong files back
	t.Logf("check with the directory swapped while it was read: %v", first)
	if _, err := p.toolchain(m, nil); !errors.Is(err, lantern.ErrDigestMismatch) {
		t.Fatalf("check of the wrong tree after the swap = %v; want lantern.ErrDigestMismatch", err)
	}
}

// TestSourceKeyDirectorySwapped: a directory of the tree swapped, while
// the toolchain is sent to BuildKit, for one whose files have the same
// names, sizes and modification times (which is all BuildKit compares) but
// other bytes, and swapped back before the check, changes no file's stamp;
// the check then vouches for every file, and the build would reuse the
// copy of the wrong bytes if the keys were the same. The directories'
// stamps, which any rename in them moves, are in the key.
func TestSourceKeyDirectorySwapped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("file stamps are read on Linux")
	}
	old := racyWindow
	racyWindow = 0
	t.Cleanup(func() { racyWindow = old })
	p, m := fakeToolchain(t)
	checked, err := p.toolchain(m, nil) // go.mod copies and execute bits made
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // a tick of the kernel's file clock
	sent := checked
	sent.snapshot = nil
	if sent.fetchedStamps, err = treeStamps(m.Dir); err != nil || sent.fetchedStamps == "" {
		t.Fatalf("treeStamps = %q, %v", sent.fetchedStamps, err)
	}

	fmtDir := filepath.Join(m.Dir, "src", "fmt")
	info, err := os.Stat(filepath.Join(fmtDir, "print.go"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fmtDir, fmtDir+".right"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(fmtDir, 0o755); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(fmtDir, "print.go")
	if err := os.WriteFile(wrong, []byte("package fmX\n"), info.Mode()); err != nil { // what the send reads
		t.Fatal(err)
	}
	os.Chtimes(wrong, info.ModTime(), info.ModTime())
	if err := os.RemoveAll(fmtDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fmtDir+".right", fmtDir); err != nil { // put back before the check
		t.Fatal(err)
	}

	again, err := p.toolchain(m, nil)
	if err != nil {
		t.Fatalf("check of the right tree, put back: %v", err)
	}
	if again.snapshot == nil || !again.snapshot.all {
		t.Fatal("the check vouches for no stamps: the test shows nothing")
	}
	if k1, k2 := sent.sourceKey(), again.sourceKey(); k1 == k2 {
		t.Errorf("a directory swapped and put back between the send and the check: both keys are %q; want different ones", k1)
	}
}

// TestCheckedToolchainZipSwapped: the directory of the toolchain's zip
// swapped, after the zip's stamp is taken and before it is read, for one
// holding the right zip, and swapped back after, leaves the wrong zip with
// the stamp the check recorded: the next check would take the zip for
// checked, where a full check refuses it.
func TestCheckedToolchainZipSwapped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("file stamps are read on Linux")
	}
	old := racyWindow
	racyWindow = 0
	t.Cleanup(func() { racyWindow = old; beforeZipReadForTest = nil })
	p, m := fakeToolchain(t)
	if _, err := p.toolchain(m, nil); err != nil {
		t.Fatal(err)
	}
	vDir := filepath.Dir(m.Zip)
	right := filepath.Join(t.TempDir(), "v")
	if err := os.CopyFS(right, os.DirFS(vDir)); err != nil {
		t.Fatal(err)
	}
	files := maps.Clone(fakeFiles)
	files["src/fmt/print.go"] = "package fmX\n"
	writeZip(t, m.Zip, m.Path+"@"+m.Version, files) // the wrong zip, in place
	time.Sleep(20 * time.Millisecond)
	swap := func(from, to string) {
		t.Helper()
		if err := os.Rename(vDir, to); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(from, vDir); err != nil {
			t.Fatal(err)
		}
	}
	beforeZipReadForTest = func() {
		beforeZipReadForTest = nil
		swap(right, vDir+".wrong")
	}
	_, first := p.toolchain(m, nil)
	if beforeZipReadForTest != nil {
		t.Fatal("the check read no zip: the test shows nothing")
	}
	swap(vDir+".wrong", right)
	t.Logf("check with the zip's directory swapped while it was read: %v", first)
	if _, err := p.toolchain(m, nil); !errors.Is(err, lantern.ErrDigestMismatch) {
		t.Fatalf("check with the wrong zip back = %v; want lantern.ErrDigestMismatch", err)
	}
}
