// Package dockertest starts a real Docker Engine — Debian's dockerd, from
// the docker.io package — for the tests of a package that builds through
// an Engine's BuildKit (worker/dockerengine, worker). One dockerd serves a
// whole test binary: the first Start starts it, and Stop, which the
// package's TestMain calls, stops it and removes what it kept. Where
// dockerd or root is missing, Start skips the test — and fails it under
// CI, which must run them.
//
// The daemon is the machine's own but for its files: its data, its state,
// its socket, its containerd (which it starts) and its containerd
// namespace are under a directory of its own, it reads an empty config
// file instead of /etc/docker/daemon.json, and it makes no bridge and no
// iptables rules, so that it leaves the machine's network alone (builds
// that ask for no network need neither). Its storage is overlay2.
package dockertest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Daemon is the test binary's dockerd.
type Daemon struct {
	// Host is its address, unix:// and its socket's path, as
	// dockerengine.Connect and DOCKER_HOST take it.
	Host string
	// TLSHost is its address on 127.0.0.1 over TLS (tcp://127.0.0.1:PORT),
	// which takes a client certificate; TLSDir holds the client's files
	// (ca.pem, cert.pem, key.pem) as dockerengine.Connect takes them, and
	// WrongCADir the same client certificate with a CA that did not sign
	// the daemon's.
	TLSHost, TLSDir, WrongCADir string
	// Version is what dockerd --version says.
	Version string

	dir    string
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
}

var (
	mu      sync.Mutex
	started *Daemon
	failed  error
)

// errMissing marks what the machine lacks, which skips a test (or fails it
// under CI).
var errMissing = errors.New("missing")

// Start returns the test binary's dockerd, starting it on the first call.
// A test that fails shows the daemon's output.
func Start(t testing.TB) *Daemon {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if started == nil && failed == nil {
		started, failed = start()
	}
	if errors.Is(failed, errMissing) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v\nCI must run the Docker Engine tests: 'make test' installs it (apt-get install docker.io) and runs them as root", failed)
		}
		t.Skipf("%v\n(to run this test: as root, 'apt-get install docker.io')", failed)
	}
	if failed != nil {
		t.Fatal(failed)
	}
	d := started
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dockerd's output (the whole test binary's, last 16 KiB):\n%s", d.log)
		}
	})
	return d
}

// Stop stops the test binary's dockerd, if one was started, and removes its
// directory. A package's TestMain calls it after m.Run.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if started != nil {
		if err := started.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "dockertest:", err)
		}
		started = nil
	}
}

func start() (*Daemon, error) {
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		return nil, fmt.Errorf("%w: dockerd not found on the PATH (Debian's docker.io package)", errMissing)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: dockerd needs root, and this test runs as uid %d", errMissing, os.Geteuid())
	}
	version, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("dockerd --version: %w", err)
	}
	// Not t.TempDir(): its path can be too long for a unix socket.
	dir, err := os.MkdirTemp("", "dk")
	if err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(config, []byte("{}\n"), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	sock := filepath.Join(dir, "docker.sock")
	ns := "lantern-test-" + filepath.Base(dir)
	tlsHost, err := freeLoopbackAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	certs, err := makeCerts(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("dockerd's certificates: %w", err)
	}
	cmd := exec.Command(bin,
		"--config-file", config,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--host", "unix://"+sock,
		"--host", "tcp://"+tlsHost,
		"--tlsverify",
		"--tlscacert", filepath.Join(certs, "ca.pem"),
		"--tlscert", filepath.Join(certs, "server.pem"),
		"--tlskey", filepath.Join(certs, "server-key.pem"),
		"--storage-driver", "overlay2",
		"--containerd-namespace", ns,
		"--containerd-plugins-namespace", ns+"-plugins",
		"--bridge", "none",
		"--iptables=false",
		"--ip6tables=false",
		"--ip-forward=false",
		"--ip-masq=false",
		"--log-level", "warn",
	)
	log := &syncBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, which Stop can kill whole; and a SIGTERM if
	// the test binary dies without calling Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	d := &Daemon{Host: "unix://" + sock, TLSHost: "tcp://" + tlsHost, TLSDir: filepath.Join(certs, "client"), WrongCADir: filepath.Join(certs, "wrong-ca"), Version: strings.TrimSpace(string(version)), dir: dir, cmd: cmd, log: log, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(d.exited)
	}()
	if err := d.waitReady(sock); err != nil {
		d.stop()
		return nil, fmt.Errorf("start dockerd: %w\ndockerd's output:\n%s", err, log)
	}
	return d, nil
}

// waitReady polls the Engine's /_ping until it answers.
func (d *Daemon) waitReady(sock string) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := hc.Get("http://docker/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/_ping: %s", resp.Status)
		}
		select {
		case <-d.exited:
			return fmt.Errorf("dockerd exited before it answered: %v", d.cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd did not answer on %s within 2 minutes: %v", sock, err)
		}
	}
}

// freeLoopbackAddr returns 127.0.0.1:PORT with a port free a moment ago.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// makeCerts writes dir/certs: a CA, the daemon's certificate for
// 127.0.0.1 (server.pem, server-key.pem), and two client directories as
// the docker CLI's DOCKER_CERT_PATH: client/ (ca.pem, cert.pem, key.pem)
// and wrong-ca/, whose ca.pem is of another CA.
func makeCerts(dir string) (string, error) {
	certs := filepath.Join(dir, "certs")
	for _, d := range []string{"client", "wrong-ca"} {
		if err := os.MkdirAll(filepath.Join(certs, d), 0o700); err != nil {
			return "", err
		}
	}
	ca, caKey, caPEM, err := newCert("lantern test CA", nil, nil, x509.ExtKeyUsageAny, true)
	if err != nil {
		return "", err
	}
	_, _, otherPEM, err := newCert("another CA", nil, nil, x509.ExtKeyUsageAny, true)
	if err != nil {
		return "", err
	}
	server, serverKey, err := newLeaf("127.0.0.1", ca, caKey, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return "", err
	}
	client, clientKey, err := newLeaf("lantern worker", ca, caKey, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return "", err
	}
	files := map[string][]byte{
		"ca.pem": caPEM, "server.pem": server, "server-key.pem": serverKey,
		"client/ca.pem": caPEM, "client/cert.pem": client, "client/key.pem": clientKey,
		"wrong-ca/ca.pem": otherPEM, "wrong-ca/cert.pem": client, "wrong-ca/key.pem": clientKey,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(certs, name), b, 0o600); err != nil {
			return "", err
		}
	}
	return certs, nil
}

func newLeaf(name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, err error) {
	_, key, cert, err := newCert(name, ca, caKey, usage, false)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// newCert makes a certificate of a new key, signed by parent (self-signed
// if nil); a leaf named like an IP address is good for that address.
func newCert(name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.ExtKeyUsage = nil
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// stop ends dockerd (SIGTERM; SIGKILL to its process group after 30
// seconds), unmounts what it left mounted and removes its directory.
func (d *Daemon) stop() error {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.exited
	}
	// containerd, which dockerd started, is in dockerd's process group.
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	if err := unmountUnder(d.dir); err != nil {
		return fmt.Errorf("stop dockerd: %w", err)
	}
	if err := os.RemoveAll(d.dir); err != nil {
		return fmt.Errorf("stop dockerd: %w", err)
	}
	return nil
}

// unmountUnder unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 5 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// syncBuffer keeps the last max bytes written to it, for the output of a
// process that runs as long as the test binary.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
