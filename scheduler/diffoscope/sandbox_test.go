package diffoscope_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanternfarm/lantern/internal/bombtest"
	"github.com/lanternfarm/lantern/scheduler/diffoscope"
)

// program returns a Differ that runs script instead of diffoscope, through
// the same sandbox: what the script sees is what diffoscope would.
func program(t *testing.T, script string) *diffoscope.Differ {
	t.Helper()
	differ(t) // the sandbox works here, or the test fails under CI
	path := filepath.Join(t.TempDir(), "stand-in")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return &diffoscope.Differ{Path: path}
}

func diff(t *testing.T, d *diffoscope.Differ, name string, a, b []byte) ([]byte, error) {
	t.Helper()
	return d.Diff(t.Context(), name, bytes.NewReader(a), bytes.NewReader(b))
}

func unique(t *testing.T) string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// TestSandboxEnvironment: nothing of the scheduler's environment reaches
// the sandbox, LANTERN_PASSWORD least of all: its processes have PATH,
// LANG, TMPDIR and HOME.
func TestSandboxEnvironment(t *testing.T) {
	secret := "hunter2-" + unique(t)
	t.Setenv("LANTERN_PASSWORD", secret)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	// env, then the environment of every process in the sandbox (bwrap's
	// own included), as the kernel keeps it.
	d := program(t, `/usr/bin/env; echo ---; for f in /proc/[0-9]*/environ; do tr '\0' '\n' <"$f"; done; exit 1`)
	report, err := diff(t, d, "x", []byte("a"), []byte("b"))
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	if bytes.Contains(report, []byte(secret)) {
		t.Fatalf("the sandbox sees the scheduler's secret:\n%s", report)
	}
	envOut, _, _ := strings.Cut(string(report), "---\n")
	got := map[string]string{}
	for line := range strings.Lines(envOut) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		got[k] = v
	}
	delete(got, "PWD") // sh's own
	want := map[string]string{"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TMPDIR": "/tmp", "HOME": "/tmp"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("environment in the sandbox = %v, want %v", got, want)
	}
}

// TestSandboxHidesTheHost: a program in the sandbox finds no claimer's key
// file (outside /usr, nothing of the host is there), reaches no listener on
// the host's loopback, and writes nowhere but its tmpfs. The same reads
// and connection outside the sandbox succeed: the checks can fail.
func TestSandboxHidesTheHost(t *testing.T) {
	dir := t.TempDir()
	secret := "LANTERN-TEST-SECRET-" + unique(t)
	key := filepath.Join(dir, "claimer.key")
	if err := os.WriteFile(key, []byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"+secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	// probe reads the key and connects; the sandbox's script also lists
	// and writes (only the sandbox's: the control outside runs the probe).
	probe := fmt.Sprintf(`cat %[1]s 2>&1
python3 -c 'import socket; socket.create_connection(("127.0.0.1", %[2]d), 5); print("CONNECTED")' 2>&1 | tail -1
`, key, port)
	script := probe + fmt.Sprintf(`echo "root: $(ls / | tr '\n' ' ')"
for p in /root /home /work /var /etc/passwd /etc/shadow /sys %[1]s; do ls -d "$p" 2>/dev/null && echo "SEES $p"; done
for p in %[1]s/x /usr/x /x ./x /dev/x /dev/shm/x /etc/x; do touch "$p" 2>/dev/null && echo "WROTE $p"; done
touch /tmp/x && echo "tmp is writable"
echo "uid $(id -u)"
exit 1
`, dir)
	d := program(t, script)
	report, err := diff(t, d, "x", []byte("a"), []byte("b"))
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	r := string(report)
	if strings.Contains(r, secret) || strings.Contains(r, "SEES") || strings.Contains(r, "WROTE") || strings.Contains(r, "CONNECTED") || accepted.Load() != 0 {
		t.Errorf("the sandbox reaches the host (key read, host directories seen, host files written, loopback reached %d times):\n%s", accepted.Load(), r)
	}
	if !strings.Contains(r, "tmp is writable") {
		t.Errorf("the sandbox's tmpfs is not writable:\n%s", r)
	}
	if os.Geteuid() == 0 && !strings.Contains(r, "uid 65534\n") {
		t.Errorf("the sandbox runs as another user than nobody (65534):\n%s", r)
	}
	root := strings.Fields(strings.TrimPrefix(lineWith(r, "root: "), "root: "))
	slices.Sort(root)
	for _, e := range root {
		if !slices.Contains([]string{"bin", "dev", "etc", "in", "lantern", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr"}, e) {
			t.Errorf("the sandbox's / holds %q: %v", e, root)
		}
	}

	// Outside the sandbox, the same probe reads the key and connects.
	out, _ := exec.Command("/bin/sh", "-c", probe).CombinedOutput()
	if !strings.Contains(string(out), secret) || !strings.Contains(string(out), "CONNECTED") {
		t.Errorf("the script outside the sandbox did not read the key and connect, so the test proves nothing:\n%s", out)
	}
}

func lineWith(s, prefix string) string {
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// TestSandboxKillsEverything: past its time limit, the run is stopped and
// so is every process it started, one in a session of its own included.
func TestSandboxKillsEverything(t *testing.T) {
	mark := fmt.Sprintf("%d", time.Now().UnixNano()%1e6)
	d := program(t, "/usr/bin/setsid /usr/bin/sleep 4321."+mark+" &\nexec /usr/bin/sleep 4322."+mark+"\n")
	d.Timeout = 2 * time.Second
	_, err := diff(t, d, "x", []byte("a"), []byte("b"))
	if le, ok := errors.AsType[*diffoscope.LimitError](err); !ok || !slices.Contains(le.Caps, diffoscope.CapTime) || !strings.Contains(err.Error(), "time limit of 2s") {
		t.Errorf("Diff = %v, want its time limit hit", err)
	}
	if left := processesWith(t, mark); len(left) > 0 {
		t.Errorf("processes left after the run: %q", left)
	}
}

// TestProcessCap: a run that forks without end is refused forks past its
// process cap (which binds though the scheduler is root), says so, and
// leaves nothing behind.
func TestProcessCap(t *testing.T) {
	mark := fmt.Sprintf("%d", time.Now().UnixNano()%1e6)
	d := program(t, "i=0; while [ $i -lt 300 ]; do /usr/bin/sleep 600."+mark+" & i=$((i+1)); done 2>/dev/null; exit 1\n")
	d.MaxProcs = 20
	_, err := diff(t, d, "x", []byte("a"), []byte("b"))
	if le, ok := errors.AsType[*diffoscope.LimitError](err); !ok || !slices.Contains(le.Caps, diffoscope.CapProcs) || !strings.Contains(err.Error(), "cap of 20 processes") {
		t.Errorf("Diff = %v, want its process cap hit", err)
	}
	if left := processesWith(t, mark); len(left) > 0 {
		t.Errorf("processes left after the run: %q", left)
	}
}

// processesWith lists the command lines of this host's processes that
// hold mark.
func processesWith(t *testing.T, mark string) []string {
	t.Helper()
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte(mark)) && !bytes.Contains(b, []byte("go test")) {
			out = append(out, f+": "+string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		}
	}
	return out
}

// TestArchiveLinksToAKey: the real diffoscope, on outputs that are
// archives linking to a claimer's key file on the scheduler's host (by a
// symlink, a hard link, a member whose path climbs out with ../, in tar,
// tar.gz and zip), reports no byte of the key, and the key is untouched.
//
// diffoscope 240 itself never follows such links: it shows a symlink's
// target and extracts members under names of its own. The sandbox is the
// second wall: TestSandboxHidesTheHost shows that the key is not even there
// to read, were diffoscope (or a tool it runs) to follow one.
func TestArchiveLinksToAKey(t *testing.T) {
	d := differ(t)
	secret := "LANTERN-TEST-SECRET-" + unique(t)
	key := filepath.Join(t.TempDir(), "claimer.key")
	keyBytes := []byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n" + secret + "\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
	if err := os.WriteFile(key, keyBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	climb := strings.Repeat("../", 16) + strings.TrimPrefix(key, "/")
	honest := tarOf(t, tarEntry{name: "cosign.key", body: "not the key\n"})
	tests := []struct {
		name, label string
		a, b        []byte
		shows       string // in the report: diffoscope saw the link
	}{
		{"tar symlink", "out.tar", tarOf(t, tarEntry{name: "cosign.key", link: key, kind: tar.TypeSymlink}), honest, "cosign.key -> " + key},
		{"tar hard link", "out.tar", tarOf(t, tarEntry{name: "cosign.key", link: key, kind: tar.TypeLink}), honest, "hrw-r--r--"},
		{"tar climbing name", "out.tar", tarOf(t, tarEntry{name: climb, body: "overwritten\n"}, tarEntry{name: "cosign.key", link: climb, kind: tar.TypeSymlink}), honest, "cosign.key -> " + climb},
		{"tar.gz symlink", "out.tar.gz", gzipOf(tarOf(t, tarEntry{name: "cosign.key", link: key, kind: tar.TypeSymlink})), gzipOf(honest), "cosign.key -> " + key},
		{"zip symlink", "out.zip", zipOf(t, key), zipOf(t, ""), "lrwxrwxrwx"},
		{"gzip named for the key", "claimer.key.gz", gzipNamed(key, "x"), gzipNamed("other", "y"), `was "` + key + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			report, err := diff(t, d, tt.label, tt.a, tt.b)
			if err != nil {
				t.Fatalf("Diff: %v", err)
			}
			if len(report) == 0 {
				t.Fatalf("Diff saw no difference")
			}
			if bytes.Contains(report, []byte(secret)) {
				t.Errorf("the report holds the key:\n%s", report)
			}
			if !bytes.Contains(report, []byte(tt.shows)) {
				t.Errorf("the report does not show %q, so diffoscope may not have seen the link:\n%s", tt.shows, report)
			}
			if b, err := os.ReadFile(key); err != nil || !bytes.Equal(b, keyBytes) {
				t.Errorf("the key file changed: %q, %v", b, err)
			}
		})
	}
}

type tarEntry struct {
	name, body, link string
	kind             byte
}

func tarOf(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link, Typeflag: e.kind, ModTime: time.Unix(1, 0)}
		if e.kind != 0 {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.kind == 0 {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func gzipOf(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// gzipNamed is a gzip file whose header names the file it came from:
// diffoscope names what it unpacks after it.
func gzipNamed(name, body string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Name = name
	zw.Write([]byte(body))
	zw.Close()
	return buf.Bytes()
}

// zipOf is a zip with a member cosign.key: a symlink to target, or a file
// when target is "".
func zipOf(t *testing.T, target string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "cosign.key", Method: zip.Store}
	body := "not the key\n"
	if target != "" {
		h.SetMode(os.ModeSymlink | 0o777)
		body = target
	}
	w, err := zw.CreateHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(body))
	zw.Close()
	return buf.Bytes()
}

// TestDecompressionBomb: the real diffoscope, given an output that
// unpacks to a gigabyte of zeros, is stopped by a cap, and the error says
// which: its scratch space (a tmpfs) when that is the smaller, else its
// memory — the tmpfs's pages count there too.
func TestDecompressionBomb(t *testing.T) {
	differ(t)
	gz, zp := bombtest.Gzip(16), bombtest.Zip(16)
	tests := []struct {
		name, label  string
		bomb, other  []byte
		memory, disk int64
		want         diffoscope.Cap
		wantMessage  string
	}{
		{"gzip past the disk cap", "out.gz", gz, gzipOf([]byte("hello\n")), 512 << 20, 32 << 20, diffoscope.CapDisk, "disk cap of 32 MiB"},
		{"zip past the disk cap", "out.zip", zp, zipOf(t, ""), 512 << 20, 32 << 20, diffoscope.CapDisk, "disk cap of 32 MiB"},
		{"gzip past the memory cap", "out.gz", gz, gzipOf([]byte("hello\n")), 192 << 20, 2 << 30, diffoscope.CapMemory, "memory cap of 192 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := differ(t)
			d.MaxMemory, d.MaxDisk = tt.memory, tt.disk
			report, err := diff(t, d, tt.label, tt.bomb, tt.other)
			le, ok := errors.AsType[*diffoscope.LimitError](err)
			if !ok || !slices.Contains(le.Caps, tt.want) || !strings.Contains(err.Error(), tt.wantMessage) {
				t.Fatalf("Diff = %v (report of %d bytes), want %s", err, len(report), tt.wantMessage)
			}
			t.Logf("Diff: %v", err)
		})
	}
}
