package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImageReproducible builds the image in two fresh clones of this
// checkout's commit, in two directories of different names, and wants one
// digest; then it reads the image back from the tarball and checks what
// makes it reproducible and usable: every time is the commit's, every entry
// 0:0 without names, and the lantern in it runs.
func TestImageReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds lantern twice")
	}
	ctx := t.Context()
	root, err := moduleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clone := func(dir string) string {
		t.Helper()
		git(t, "", "clone", "-q", "--depth", "1", "file://"+root, dir)
		return dir
	}
	a := clone(filepath.Join(t.TempDir(), "a"))
	b := clone(filepath.Join(t.TempDir(), "second-checkout", "lantern"))

	epochA, err := sourceEpoch(ctx, a, "")
	if err != nil {
		t.Fatal(err)
	}
	imgA, err := Build(ctx, a, "amd64", epochA)
	if err != nil {
		t.Fatal(err)
	}
	epochB, err := sourceEpoch(ctx, b, "")
	if err != nil {
		t.Fatal(err)
	}
	imgB, err := Build(ctx, b, "amd64", epochB)
	if err != nil {
		t.Fatal(err)
	}
	da, err := imgA.Digest()
	if err != nil {
		t.Fatal(err)
	}
	db, err := imgB.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if da != db {
		t.Fatalf("image digests of two clones of one commit: %s and %s, want one", da, db)
	}
	t.Logf("image %s from both clones", da)

	// Through the tarball, as docker load reads it.
	out := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(out, name.MustParseReference("lantern:test"), imgA); err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := img.Digest(); err != nil || d != da {
		t.Fatalf("digest of the image read back = %v, %v, want %s", d, err, da)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !cf.Created.Time.Equal(epochA) || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("config: created %v, %s/%s; want %v, linux/amd64", cf.Created.Time, cf.OS, cf.Architecture, epochA)
	}
	rev := strings.TrimSpace(git(t, a, "rev-parse", "HEAD"))
	if got := cf.Config.Labels["org.opencontainers.image.revision"]; got != rev {
		t.Errorf("revision label = %q, want %q", got, rev)
	}
	for _, h := range cf.History {
		if !h.Created.Time.Equal(epochA) {
			t.Errorf("history %q created %v, want %v", h.CreatedBy, h.Created.Time, epochA)
		}
	}

	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	bins := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(epochA) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: time %v, owner %d:%d %q:%q; want %v, 0:0 without names", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname, epochA)
		}
		if strings.HasPrefix(h.Name, "usr/local/bin/") {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			bins[strings.TrimPrefix(h.Name, "usr/local/bin/")] = data
		}
	}
	for _, n := range []string{"lantern", "nats-server", "pause"} {
		data := bins[n]
		if data == nil {
			t.Fatalf("no /usr/local/bin/%s in the image", n)
		}
		// Neither clone's directory, nor this machine's name, is in it.
		host, _ := os.Hostname()
		for _, s := range []string{a, b, filepath.Base(filepath.Dir(b)), root} {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds the build directory %q", n, s)
			}
		}
		if host != "" && len(host) > 6 && bytes.Contains(data, []byte(host)) {
			t.Errorf("%s holds the host name %q", n, host)
		}
	}
	bin := filepath.Join(t.TempDir(), "lantern")
	if err := os.WriteFile(bin, bins["lantern"], 0o755); err != nil {
		t.Fatal(err)
	}
	// The binary says which commit it is, and that it had no changes.
	info, err := exec.CommandContext(ctx, "go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, info)
	}
	for _, want := range []string{"vcs.revision=" + rev, "vcs.modified=false", "CGO_ENABLED=0", "-trimpath=true"} {
		if !bytes.Contains(info, []byte(want)) {
			t.Errorf("the image's lantern: go version -m has no %q:\n%s", want, info)
		}
	}
	if out, err := exec.CommandContext(ctx, bin, "help").CombinedOutput(); err != nil || !bytes.Contains(out, []byte("scheduler")) {
		t.Errorf("the image's lantern help: %v\n%s", err, out)
	}
}

// TestImageEpoch: another SOURCE_DATE_EPOCH gives another image, and an
// epoch that is not a number is refused (exit 2).
func TestImageEpoch(t *testing.T) {
	if _, err := sourceEpoch(t.Context(), "", "yesterday"); err == nil {
		t.Fatal(`sourceEpoch("yesterday") = nil error, want one`)
	} else if _, ok := err.(usageError); !ok {
		t.Fatalf("sourceEpoch(\"yesterday\") = %v, want a usage error", err)
	}
	files := []file{{name: "a/", mode: 0o755 | os.ModeDir}, {name: "a/b", mode: 0o644, data: []byte("x")}}
	t1, err := tarOf(append([]file(nil), files...), time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	t2, err := tarOf(append([]file(nil), files...), time.Unix(2, 0))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(t1, t2) {
		t.Error("tarOf at two times: the same bytes, want the time in them")
	}
	// Order of the input does not matter: the entries are sorted.
	t3, err := tarOf([]file{files[1], files[0]}, time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(t1, t3) {
		t.Error("tarOf of the same files in another order: other bytes, want the same")
	}
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	c := exec.Command("git", args...)
	c.Dir = dir
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
