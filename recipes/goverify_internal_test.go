package recipes

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestTreeHashSince: the snapshot of a tree spares reading its unchanged
// files again, and any change after it (a write that keeps the size and
// the modification time, a file added, removed or replaced) is still
// found.
func TestTreeHashSince(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("file stamps are read on Linux")
	}
	const prefix = "example.com/m@v1.0.0"
	old := racyWindow
	racyWindow = 0 // the files below are made just before the hash
	t.Cleanup(func() { racyWindow = old })
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
	}{
		{"a write that keeps size and mtime", func(t *testing.T, dir string) {
			name := filepath.Join(dir, "a.go")
			info, err := os.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, []byte("package b\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(name, info.ModTime(), info.ModTime()); err != nil {
				t.Fatal(err)
			}
		}},
		{"a file added", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "sub", "new.go"), []byte("package sub\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"a file removed", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "sub", "c.go")); err != nil {
				t.Fatal(err)
			}
		}},
		{"a file replaced", func(t *testing.T, dir string) {
			name := filepath.Join(dir, "sub", "c.go")
			if err := os.WriteFile(name+".new", []byte("package sup\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(name+".new", name); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range map[string]string{"a.go": "package a\n", "sub/c.go": "package sub\n", "go.mod": "module example.com/m\n"} {
				name = filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(20 * time.Millisecond) // a tick of the kernel's file clock
			want, snap, err := treeHashSince(dir, prefix, nil)
			if err != nil {
				t.Fatal(err)
			}
			if snap == nil || len(snap.files) != 3 {
				t.Fatalf("treeHashSince() snapshot = %+v, want its three files", snap)
			}
			if got, _, err := treeHashSince(dir, prefix, snap); got != want || err != nil {
				t.Fatalf("treeHashSince() of the unchanged tree = %s, %v; want %s", got, err, want)
			}
			// An unchanged file is not read again: a sum made up in the
			// snapshot shows in the hash.
			forged := &treeSnapshot{dir: dir, files: map[string]stampedSum{}}
			for rel, s := range snap.files {
				s.sum[0] ^= 1
				forged.files[rel] = s
			}
			if got, _, _ := treeHashSince(dir, prefix, forged); got == want {
				t.Fatalf("treeHashSince() read the files the snapshot vouches for")
			}
			// Nor is one of another directory's snapshot.
			elsewhere := *forged
			elsewhere.dir = dir + "-copy"
			if got, _, _ := treeHashSince(dir, prefix, &elsewhere); got != want {
				t.Fatalf("treeHashSince() used a snapshot of another directory")
			}

			tc.change(t, dir)
			fresh, err := treeHash(dir, prefix)
			if err != nil {
				t.Fatal(err)
			}
			if fresh == want {
				t.Fatal("the change did not change the tree's hash")
			}
			if got, _, err := treeHashSince(dir, prefix, snap); got != fresh || err != nil {
				t.Errorf("treeHashSince() after the change = %s, %v; want %s, as read afresh", got, err, fresh)
			}
		})
	}
}

// TestTreeHashSinceRacy: a file changed just before the hash is not
// vouched for by its stamp.
func TestTreeHashSinceRacy(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("file stamps are read on Linux")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.go"), []byte("package a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, snap, err := treeHashSince(dir, "m@v1.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if snap == nil || len(snap.files) != 0 {
		t.Errorf("treeHashSince() snapshot of a file just written = %+v, want it left out", snap)
	}
}

// TestSourceKey: BuildKit's key of a toolchain's copy is the same for a
// toolchain sent before its check and for the checked one when no file
// changed between the two, and differs when a file was written and put
// back (same bytes, size and modification time) in between: the build then
// makes a copy of its own instead of reusing one that may hold what was
// there while it was sent.
func TestSourceKey(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("file stamps are read on Linux")
	}
	old := racyWindow
	racyWindow = 0 // the files below are made just before the hash
	t.Cleanup(func() { racyWindow = old })
	dir := t.TempDir()
	for name, data := range map[string]string{"bin/go": "go\n", "src/go.mod": "module std\n"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tc := GoToolchain{Module: "golang.org/toolchain", Version: "v0.0.1-go1.24.4.linux-amd64", Sum: "h1:x", Dir: dir}
	fetched := func() GoToolchain {
		t.Helper()
		stamps, err := treeStamps(dir)
		if err != nil || stamps == "" {
			t.Fatalf("treeStamps = %q, %v", stamps, err)
		}
		f := tc
		f.fetchedStamps = stamps
		return f
	}
	checked := func() GoToolchain {
		t.Helper()
		_, snap, err := treeHashSince(dir, tc.Module+"@"+tc.Version, nil)
		if err != nil || snap == nil || !snap.all {
			t.Fatalf("treeHashSince: snapshot %+v, %v; want one of every file", snap, err)
		}
		c := tc
		c.snapshot = snap
		return c
	}

	sent := fetched()
	if k1, k2 := sent.sourceKey(), checked().sourceKey(); k1 != k2 {
		t.Errorf("unchanged files: the sent toolchain's key %q, the checked one's %q; want the same", k1, k2)
	}

	sent = fetched()
	name := filepath.Join(dir, "bin", "go")
	info, _ := os.Stat(name)
	before, _ := stampOf(info)
	// The kernel's ctime comes from a coarse clock: write until it moves.
	for deadline := time.Now().Add(10 * time.Second); ; {
		os.WriteFile(name, []byte("GO\n"), 0o644) // what a send would read
		os.WriteFile(name, []byte("go\n"), 0o644) // put back before the check
		os.Chtimes(name, info.ModTime(), info.ModTime())
		now, _ := os.Stat(name)
		if after, _ := stampOf(now); after.ctime != before.ctime {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the file's ctime did not move in 10 seconds")
		}
		time.Sleep(time.Millisecond)
	}
	if k1, k2 := sent.sourceKey(), checked().sourceKey(); k1 == k2 {
		t.Errorf("a file written and put back between the send and the check: both keys are %q; want different ones", k1)
	}

	// Nothing vouches for every file: a key of its own each time.
	unvouched := tc
	if k1, k2 := unvouched.sourceKey(), unvouched.sourceKey(); k1 == k2 {
		t.Errorf("a toolchain with no stamps: the key %q twice; want a new one each time", k1)
	}
}
