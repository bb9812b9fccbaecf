package goproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
)

// DefaultSumDB is the Go checksum database, by name, as GOSUMDB names it.
const DefaultSumDB = "sum.golang.org"

// sumGolangOrg is the verifier key of sum.golang.org, the go command's own
// (cmd/go/internal/modfetch).
const sumGolangOrg = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"

// maxRemote bounds one answer of the database: a lookup is a record and a
// signed tree head, a tile at most 2^8 hashes of 32 bytes.
const maxRemote = 1 << 20

// SumDB is a client of a Go checksum database: it checks every answer
// against the database's signed tree head and the log's inclusion proofs,
// and keeps the latest tree head it verified in its directory, so that a
// database that forks its log, or rolls it back, is caught on the next
// lookup (a security error).
type SumDB struct {
	name   string
	client *sumdb.Client
	ops    *sumdbOps
}

var _ Checker = (*SumDB)(nil)

// NewSumDB returns a client of the database that gosumdb names, in GOSUMDB's
// form: "sum.golang.org" (the default, also for ""), or "NAME+HASH+KEY"
// with an optional URL after a space. Without a URL it asks the database
// through the module proxy at proxy, as the go command does
// (PROXY/sumdb/NAME/...), where the proxy says it supports that, and
// https://NAME otherwise. dir holds the latest verified tree head. hc nil
// means a client with a one-minute timeout per request.
func NewSumDB(gosumdb, proxy, dir string, hc *http.Client) (*SumDB, error) {
	key, base, err := parseGOSUMDB(gosumdb)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(key)
	if err != nil {
		return nil, fmt.Errorf("GOSUMDB %q: the key: %w", gosumdb, err)
	}
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	ops := &sumdbOps{key: key, name: v.Name(), base: base, proxy: strings.TrimSuffix(proxy, "/"), dir: dir, hc: hc, cache: map[string][]byte{}}
	return &SumDB{name: v.Name(), client: sumdb.NewClient(ops), ops: ops}, nil
}

func parseGOSUMDB(s string) (key, base string, err error) {
	fields := strings.Fields(s)
	switch {
	case len(fields) == 0 || (len(fields) == 1 && fields[0] == DefaultSumDB):
		return sumGolangOrg, "", nil
	case fields[0] == "off":
		return "", "", fmt.Errorf("GOSUMDB %q: Lantern checks every module against a checksum database; give one, such as %s", s, DefaultSumDB)
	case len(fields) > 2 || !strings.Contains(fields[0], "+"):
		return "", "", fmt.Errorf("GOSUMDB %q: want %s, or NAME+HASH+KEY and an optional URL", s, DefaultSumDB)
	}
	key = fields[0]
	if len(fields) == 1 {
		return key, "", nil
	}
	base = fields[1]
	if u, err := url.Parse(base); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", "", fmt.Errorf("GOSUMDB %q: URL %q: want an http(s) URL", s, base)
	}
	return key, strings.TrimRight(base, "/"), nil
}

// Name is the database's name, as its key gives it.
func (db *SumDB) Name() string { return db.name }

// Sum returns the h1: hash the database records for the module version's
// zip, after checking the record's inclusion in the database's signed log.
func (db *SumDB) Sum(modPath, version string) (string, error) {
	lines, err := db.client.Lookup(modPath, version)
	if msg := db.ops.securityError(); msg != "" {
		return "", fmt.Errorf("checksum database %s: %w: %s", db.name, sumdb.ErrSecurity, msg)
	}
	if err != nil {
		return "", fmt.Errorf("checksum database %s: %w", db.name, err)
	}
	prefix := modPath + " " + version + " h1:"
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimPrefix(l, modPath+" "+version+" "), nil
		}
	}
	return "", fmt.Errorf("checksum database %s: no h1: hash of %s@%s", db.name, modPath, version)
}

// sumdbOps are the client's reads and writes: HTTP to the database, the
// latest tree head in a file, tiles and records in memory (each is checked
// against a tree head again when read).
type sumdbOps struct {
	key, name, dir string
	proxy          string // the module proxy, to reach the database through
	hc             *http.Client

	mu       sync.Mutex
	base     string // the database's URL; "" until known
	cache    map[string][]byte
	security string
}

var _ sumdb.ClientOps = (*sumdbOps)(nil)

// baseURL returns the database's URL: the one GOSUMDB gave, or the
// proxy's PROXY/sumdb/NAME where the proxy answers 200 to
// PROXY/sumdb/NAME/supported, or https://NAME where it answers 404 or 410.
func (o *sumdbOps) baseURL() (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.base != "" {
		return o.base, nil
	}
	direct := "https://" + o.name
	if o.proxy == "" {
		o.base = direct
		return o.base, nil
	}
	via := o.proxy + "/sumdb/" + o.name
	resp, err := o.hc.Get(via + "/supported")
	if err != nil {
		return "", fmt.Errorf("ask the module proxy for the checksum database: %w", err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		o.base = via
	case http.StatusNotFound, http.StatusGone:
		o.base = direct
	default:
		return "", fmt.Errorf("GET %s/supported: %q", via, resp.Status)
	}
	return o.base, nil
}

func (o *sumdbOps) ReadRemote(p string) ([]byte, error) {
	base, err := o.baseURL()
	if err != nil {
		return nil, err
	}
	u := base + p
	resp, err := o.hc.Get(u)
	if err != nil {
		return nil, fmt.Errorf("ask the checksum database: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		// Quoted: the answer is the database's (or the proxy's) to
		// choose, and it ends up on a terminal.
		return nil, fmt.Errorf("GET %s: %q: %q", u, resp.Status, bytes.TrimSpace(b))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRemote+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(b) > maxRemote {
		return nil, fmt.Errorf("GET %s: more than %d bytes", u, maxRemote)
	}
	return b, nil
}

// latestFile is where the latest verified tree head of the database
// named in file ("NAME/latest") is kept.
func (o *sumdbOps) latestFile(file string) (string, error) {
	if file != o.name+"/latest" || strings.ContainsAny(o.name, `/\`) || o.name == ".." || o.name == "." {
		return "", fmt.Errorf("checksum database config %q: not this client's", file)
	}
	return filepath.Join(o.dir, o.name, "latest"), nil
}

func (o *sumdbOps) ReadConfig(file string) ([]byte, error) {
	if file == "key" {
		return []byte(o.key), nil
	}
	p, err := o.latestFile(file)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // start from an empty tree
	}
	return b, err
}

func (o *sumdbOps) WriteConfig(file string, old, new []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, err := o.latestFile(file)
	if err != nil {
		return err
	}
	cur, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if !bytes.Equal(cur, old) {
		return sumdb.ErrWriteConflict
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".latest.*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(new); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

func (o *sumdbOps) ReadCache(file string) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if b, ok := o.cache[file]; ok {
		return b, nil
	}
	return nil, fs.ErrNotExist
}

func (o *sumdbOps) WriteCache(file string, data []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cache[file] = data
}

func (o *sumdbOps) Log(string) {}

func (o *sumdbOps) SecurityError(msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.security == "" {
		o.security = msg
	}
}

func (o *sumdbOps) securityError() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.security
}
