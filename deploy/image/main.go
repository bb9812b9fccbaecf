// Command image builds Lantern's container image from this checkout,
// reproducibly: the same commit gives the same image digest on any machine
// with the same Go toolchain.
//
//	go run ./deploy/image -o bin/lantern-image.tar      # make image
//	docker load -i bin/lantern-image.tar
//
// The image is one layer on nothing (FROM scratch): /usr/local/bin/lantern
// and /usr/local/bin/nats-server (the nats-server of the module Lantern
// embeds, for the nodes of a NATS cluster) and /usr/local/bin/pause (which
// holds a network namespace, for deploy/compose), built with -trimpath and
// CGO_ENABLED=0 in a clean environment (GOFLAGS set to -buildvcs only,
// GOEXPERIMENT cleared, GOOS/GOARCH given, GOAMD64=v1), plus an empty /tmp and /var/lib/lantern.
// Every time in it — file times, the image's creation, its history — is
// SOURCE_DATE_EPOCH, by default the commit's time (git log -1 --format=%ct);
// every file belongs to 0:0 with no user or group names, entries are
// sorted, and no host name, path or build time goes in. lantern carries its
// commit (Go's vcs stamp: a checkout with changes says so, and gives another
// digest). The image's digest, its manifest's sha256, is printed, and the
// image is written as a docker tarball (docker load -i).
//
// Mozilla's roots are in lantern itself (x509roots/fallback): the image has
// no CA file of its own.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	var u usageError
	switch {
	case err == nil:
	case errors.As(err, &u):
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

func run(ctx context.Context, args []string, out io.Writer) error {
	f := flag.NewFlagSet("image", flag.ContinueOnError)
	output := f.String("o", "bin/lantern-image.tar", "`FILE` to write the image to, as a docker tarball (docker load -i FILE)")
	tag := f.String("tag", envOr("LANTERN_IMAGE", "lantern:latest"), "the image's `NAME:TAG` in the tarball, what docker load names it (default $LANTERN_IMAGE or lantern:latest)")
	arch := f.String("arch", "amd64", "`GOARCH` of the image's binaries (linux only)")
	epochFlag := f.String("epoch", os.Getenv("SOURCE_DATE_EPOCH"), "every time in the image, in `SECONDS` since 1970 (default $SOURCE_DATE_EPOCH, else the commit's time)")
	digestFile := f.String("digest-file", "", "also write the image's digest to `FILE`")
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError(err.Error())
	}
	if f.NArg() > 0 {
		return usageError(fmt.Sprintf("takes no arguments, got %q", f.Args()))
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		return usageError(fmt.Sprintf("-tag %q: %v (want NAME:TAG, such as lantern:latest)", *tag, err))
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	epoch, err := sourceEpoch(ctx, root, *epochFlag)
	if err != nil {
		return err
	}
	img, err := Build(ctx, root, *arch, epoch)
	if err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*output), 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(*output, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", *output, err)
	}
	if *digestFile != "" {
		if err := os.WriteFile(*digestFile, []byte(d.String()+"\n"), 0o644); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(out, "%s %s %s\n", d, ref, *output)
	return err
}

// moduleRoot is the directory of Lantern's go.mod, from the working
// directory.
func moduleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("find the module's root (run this inside the checkout): %w", err)
	}
	dir := strings.TrimSpace(string(b))
	if _, err := os.Stat(filepath.Join(dir, "cmd", "lantern")); err != nil {
		return "", fmt.Errorf("%s is not Lantern's checkout (no cmd/lantern): run this inside it", dir)
	}
	return dir, nil
}

// sourceEpoch is flag, else the time of the checkout's commit.
func sourceEpoch(ctx context.Context, root, flag string) (time.Time, error) {
	if flag == "" {
		c := exec.CommandContext(ctx, "git", "log", "-1", "--format=%ct")
		c.Dir = root
		b, err := c.Output()
		if err != nil {
			return time.Time{}, fmt.Errorf("the commit's time (git log -1 --format=%%ct in %s): %w; outside a git checkout, set SOURCE_DATE_EPOCH", root, err)
		}
		flag = strings.TrimSpace(string(b))
	}
	s, err := strconv.ParseInt(flag, 10, 64)
	if err != nil || s < 0 {
		return time.Time{}, usageError(fmt.Sprintf("SOURCE_DATE_EPOCH %q: want whole seconds since 1970", flag))
	}
	return time.Unix(s, 0).UTC(), nil
}

// Build builds lantern and nats-server from the module at root for
// linux/arch and returns the image of them, every time in it epoch.
func Build(ctx context.Context, root, arch string, epoch time.Time) (v1.Image, error) {
	dir, err := os.MkdirTemp("", "lantern-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bins := []struct{ name, pkg string }{
		{"lantern", "./cmd/lantern"},
		{"nats-server", "github.com/nats-io/nats-server/v2"},
		{"pause", "./deploy/image/pause"},
	}
	files := []file{
		{name: "tmp/", mode: 0o1777 | os.ModeDir},
		{name: "usr/", mode: 0o755 | os.ModeDir},
		{name: "usr/local/", mode: 0o755 | os.ModeDir},
		{name: "usr/local/bin/", mode: 0o755 | os.ModeDir},
		{name: "var/", mode: 0o755 | os.ModeDir},
		{name: "var/lib/", mode: 0o755 | os.ModeDir},
		{name: "var/lib/lantern/", mode: 0o700 | os.ModeDir},
	}
	for _, b := range bins {
		out := filepath.Join(dir, b.name)
		if err := goBuild(ctx, root, arch, out, b.pkg); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(out)
		if err != nil {
			return nil, err
		}
		files = append(files, file{name: "usr/local/bin/" + b.name, mode: 0o755, data: data})
	}
	layerTar, err := tarOf(files, epoch)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "go run ./deploy/image (lantern, nats-server, pause)",
			Comment:   "built reproducibly from Lantern's checkout",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint: []string{"/usr/local/bin/lantern"},
		Cmd:        []string{"help"},
		Env:        []string{"PATH=/usr/local/bin", "LANTERN_DATA=/var/lib/lantern"},
		WorkingDir: "/var/lib/lantern",
		Labels: map[string]string{
			"org.opencontainers.image.title":   "lantern",
			"org.opencontainers.image.source":  "https://github.com/lanternfarm/lantern",
			"org.opencontainers.image.created": epoch.Format(time.RFC3339),
		},
	}
	if rev, err := commit(ctx, root); err == nil {
		cf.Config.Labels["org.opencontainers.image.revision"] = rev
	}
	return mutate.ConfigFile(img, cf)
}

// goBuild builds pkg to out in an environment that holds nothing of the
// host's Go settings but its caches and module proxy.
func goBuild(ctx context.Context, root, arch, out, pkg string) error {
	// Go stamps the commit into lantern where root is a git checkout
	// (vcs.revision, vcs.time, vcs.modified); GOFLAGS is set, not cleared,
	// since an empty one gives way to the go env file's.
	vcs := "-buildvcs=false"
	if _, err := commit(ctx, root); err == nil {
		vcs = "-buildvcs=true"
	}
	c := exec.CommandContext(ctx, "go", "build", "-trimpath", "-mod=readonly", "-o", out, pkg)
	c.Dir = root
	c.Env = append(cleanEnv(os.Environ()), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOAMD64=v1", "GOARM64=v8.0", "GOFLAGS="+vcs, "GOEXPERIMENT=")
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, stderr.Bytes())
	}
	return nil
}

// cleanEnv drops the settings that change what the go command builds.
func cleanEnv(env []string) []string {
	drop := map[string]bool{"CGO_ENABLED": true, "GOOS": true, "GOARCH": true, "GOAMD64": true, "GOARM64": true,
		"GOFLAGS": true, "GOEXPERIMENT": true, "GOWORK": true, "CC": true, "CGO_CFLAGS": true, "CGO_LDFLAGS": true, "GO386": true, "GOARM": true}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	return append(out, "GOWORK=off")
}

func commit(ctx context.Context, root string) (string, error) {
	c := exec.CommandContext(ctx, "git", "rev-parse", "HEAD")
	c.Dir = root
	b, err := c.Output()
	return strings.TrimSpace(string(b)), err
}

type file struct {
	name string // relative, directories ending in /
	mode os.FileMode
	data []byte
}

// tarOf is files as a tar stream: sorted, owned by 0:0 with no names, every
// time t.
func tarOf(files []file, t time.Time) ([]byte, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: int64(f.mode.Perm()), ModTime: t, Format: tar.FormatPAX}
		if f.mode&os.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		if f.mode.IsDir() {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
