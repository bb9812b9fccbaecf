package recipes

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kflate "github.com/klauspost/compress/flate"

	"github.com/lanternfarm/lantern"
)

// DigestError reports an input whose bytes are not the ones claimed or
// recorded. It wraps lantern.ErrDigestMismatch.
type DigestError struct {
	// Input names what was checked ("golang.org/x/tools@v0.30.0 zip").
	Input string
	// Path is the file, where there is one.
	Path string
	// Expected and Actual are the SHA-256 digests, where those differ;
	// a zero Actual means the file is missing, a zero Expected that none was
	// recorded (the file should not be there).
	Expected, Actual lantern.Digest
	// ExpectedSum and ActualSum are Go's h1: hashes, where those differ.
	ExpectedSum, ActualSum string
	// Hint says what to do about it.
	Hint string
}

func (e *DigestError) Error() string {
	var b strings.Builder
	b.WriteString(e.Input)
	if e.Path != "" {
		fmt.Fprintf(&b, " (%s)", e.Path)
	}
	b.WriteString(": ")
	b.WriteString(lantern.ErrDigestMismatch.Error())
	switch {
	case e.ExpectedSum != "" || e.ActualSum != "":
		fmt.Fprintf(&b, ": want %s, have %s", orNone(e.ExpectedSum), orNone(e.ActualSum))
	case e.Expected.IsZero():
		fmt.Fprintf(&b, ": want no such file, have %s", e.Actual)
	case e.Actual.IsZero():
		fmt.Fprintf(&b, ": want %s, have no file", e.Expected)
	default:
		fmt.Fprintf(&b, ": want %s, have %s", e.Expected, e.Actual)
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Unwrap returns lantern.ErrDigestMismatch.
func (e *DigestError) Unwrap() error { return lantern.ErrDigestMismatch }

// VerifyGo checks that the files a build of in would mount are the ones
// PrepareGo recorded: the toolchain's tree, and every file of the file
// GOPROXY (each zip by SHA-256 and h1: hash, each go.mod likewise, the
// .info and list files it made up), with nothing added. A difference is a
// *DigestError, which wraps lantern.ErrDigestMismatch.
func VerifyGo(in *GoInputs) error {
	if err := verifyToolchain(in.Toolchain); err != nil {
		return fmt.Errorf("verify go inputs: %w", err)
	}
	if err := verifyProxy(in); err != nil {
		return fmt.Errorf("verify go inputs: %w", err)
	}
	return nil
}

func verifyToolchain(tc GoToolchain) error {
	got, _, err := treeHashSince(tc.Dir, tc.Module+"@"+tc.Version, tc.snapshot)
	if err != nil {
		return err
	}
	if got != tc.Tree {
		return &DigestError{Input: "toolchain tree " + tc.Module + "@" + tc.Version, Path: tc.Dir, ExpectedSum: tc.Tree, ActualSum: got}
	}
	return checkExecutable(tc.Dir)
}

func verifyProxy(in *GoInputs) error {
	var source *GoModule
	want := map[string]func(name string) error{} // file, relative → its check
	for i := range in.Modules {
		m := in.Modules[i]
		base, err := downloadBase("", m.Path, m.Version)
		if err != nil {
			return err
		}
		want[base+".mod"] = func(name string) error {
			d, sum, err := hashGoMod(name)
			if err != nil {
				return err
			}
			if d != m.Mod || sum != m.ModSum {
				return &DigestError{Input: m.String() + " go.mod", Path: name, Expected: m.Mod, Actual: d}
			}
			return nil
		}
		want[base+".info"] = sameBytes(m.String()+" .info", infoFile(m.Version))
		if m.Zip.IsZero() {
			continue
		}
		if m.Path == in.Spec.Module && m.Version == in.Spec.Version {
			source = &in.Modules[i]
		}
		want[base+".zip"] = func(name string) error {
			d, _, err := lantern.DigestFile(name)
			if err != nil {
				return err
			}
			if d != m.Zip {
				return &DigestError{Input: m.String() + " zip", Path: name, Expected: m.Zip, Actual: d}
			}
			sums, err := zipSums(name)
			if err != nil {
				return err
			}
			if sum := hash1(sums); sum != m.Sum {
				return &DigestError{Input: m.String() + " zip", Path: name, ExpectedSum: m.Sum, ActualSum: sum}
			}
			return nil
		}
	}
	if source == nil {
		return fmt.Errorf("the inputs hold no zip of the source, %s@%s", in.Spec.Module, in.Spec.Version)
	}
	if source.Zip != in.Source.Digest || source.Sum != in.Source.GoSum {
		return &DigestError{Input: "source " + source.String(), Expected: in.Source.Digest, Actual: source.Zip}
	}
	for mod, list := range versionLists(in.Modules) {
		base, err := downloadBase("", mod, "v0.0.0")
		if err != nil {
			return err
		}
		want[filepath.Join(filepath.Dir(base), "list")] = sameBytes(mod+" version list", list)
	}

	seen := map[string]bool{}
	err := filepath.WalkDir(in.ProxyDir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(in.ProxyDir, name)
		if err != nil {
			return err
		}
		check, ok := want[rel]
		if !ok || !d.Type().IsRegular() {
			actual, _, _ := lantern.DigestFile(name)
			return &DigestError{Input: "file GOPROXY: unrecorded file " + rel, Path: name, Actual: actual,
				Hint: "the sandbox would see it; PrepareGo again"}
		}
		seen[rel] = true
		return check(name)
	})
	if err != nil {
		return err
	}
	for _, rel := range slices.Sorted(maps.Keys(want)) {
		if !seen[rel] {
			return &DigestError{Input: "file GOPROXY: " + rel, Path: filepath.Join(in.ProxyDir, rel), Hint: "it is missing; PrepareGo again"}
		}
	}
	return nil
}

func sameBytes(input string, want []byte) func(string) error {
	return func(name string) error {
		got, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return &DigestError{Input: input, Path: name, Expected: lantern.DigestOf(want), Actual: lantern.DigestOf(got)}
		}
		return nil
	}
}

// zipSums returns the SHA-256 of each file in a zip, by name. Two files of
// one name are an error: Go's h1: hash would count both.
func zipSums(name string) (map[string][32]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open module zip: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open module zip: %w", err)
	}
	return zipSumsAt(name, f, info.Size())
}

// zipSumsAt is zipSums of the zip r of size bytes, named name.
func zipSumsAt(name string, r io.ReaderAt, size int64) (map[string][32]byte, error) {
	z, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("open module zip %s: %w", name, err)
	}
	// klauspost's inflate makes the same bytes as the standard library's,
	// in about half the time (a toolchain's zip is 250 MB inflated);
	// archive/zip still checks each file's CRC-32 and size.
	z.RegisterDecompressor(zip.Deflate, func(r io.Reader) io.ReadCloser { return kflate.NewReader(r) })
	names := make(map[string]bool, len(z.File))
	for _, f := range z.File {
		if names[f.Name] {
			return nil, fmt.Errorf("module zip %s: %q twice", name, f.Name)
		}
		names[f.Name] = true
	}
	sums, err := hashAll(z.File, func(f *zip.File) (string, io.ReadCloser, error) {
		r, err := f.Open()
		return f.Name, r, err
	})
	if err != nil {
		return nil, fmt.Errorf("module zip %s: %w", name, err)
	}
	return sums, nil
}

// hashAll hashes what open opens for each item, on all CPUs: a toolchain
// is 250 MB in 10,000 files.
func hashAll[T any](items []T, open func(T) (string, io.ReadCloser, error)) (map[string][32]byte, error) {
	sums := make(map[string][32]byte, len(items))
	var (
		mu       sync.Mutex
		firstErr error
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			h := sha256.New()
			buf := make([]byte, 64<<10)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(items) {
					return
				}
				name, r, err := open(items[i])
				if err == nil {
					h.Reset()
					_, err = io.CopyBuffer(h, r, buf)
					r.Close()
				}
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("%s: %w", name, err)
					}
					next.Store(int64(len(items)))
				} else {
					sums[name] = [32]byte(h.Sum(nil))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return sums, nil
}

// hash1 is Go's h1: hash (golang.org/x/mod/sumdb/dirhash.Hash1) of files
// given by name and SHA-256: the base64 SHA-256 of the lines
// "<hex sha256>  <name>\n", sorted by name.
func hash1(sums map[string][32]byte) string {
	names := slices.Sorted(maps.Keys(sums))
	h := sha256.New()
	for _, name := range names {
		sum := sums[name]
		fmt.Fprintf(h, "%x  %s\n", sum[:], name)
	}
	return "h1:" + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// treeHash is the h1: hash of the regular files under dir, named
// prefix/relative path; anything else (a symbolic link, a device) is an
// error.
func treeHash(dir, prefix string) (string, error) {
	h, _, err := treeHashSince(dir, prefix, nil)
	return h, err
}

// treeSnapshot is what treeHashSince read of a tree: the SHA-256 of each
// file, with the file's stamp from before it was read. It is kept in
// memory only, with the GoInputs it was made for, so that VerifyGo need
// not read again, seconds after PrepareGo, a toolchain of 13,000 files.
type treeSnapshot struct {
	dir string
	// files are the files hashed, by relative path, whose stamps were
	// older than the hash, and so trusted.
	files map[string]stampedSum
	// all reports whether files holds every file of the tree.
	all bool
	// dirs are the stamps of the tree's directories, by relative path
	// and "/", taken by the walk: a rename in one moves its stamp, while
	// the files' stay.
	dirs map[string]fileStamp
}

// stampsKey names the stamps of every file of the tree, for BuildKit's
// key of its copy of the tree (toolchainSource); "" when the snapshot
// does not vouch for every file.
func (s *treeSnapshot) stampsKey() string {
	if s == nil || !s.all {
		return ""
	}
	stamps := make(map[string]fileStamp, len(s.files)+len(s.dirs))
	for rel, f := range s.files {
		stamps[rel] = f.stamp
	}
	maps.Copy(stamps, s.dirs)
	return stampsDigest(stamps)
}

// stampsDigest is the SHA-256 of the files' paths and stamps, in path
// order.
func stampsDigest(stamps map[string]fileStamp) string {
	h := sha256.New()
	for _, rel := range slices.Sorted(maps.Keys(stamps)) {
		st := stamps[rel]
		fmt.Fprintf(h, "%q %d %d %d %d %d %d\n", rel, st.dev, st.ino, st.size, st.mode, st.mtime, st.ctime)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// treeStamps returns stampsDigest of every regular file and directory
// under dir (a directory's by its path and "/"), read with Lstat alone; "" where the platform gives no stamps, the tree holds
// anything but directories and regular files, or a file was changed within
// racyWindow before: such a file may change again without moving its
// ctime, so its stamp does not vouch for what is read of it after.
func treeStamps(dir string) (string, error) {
	stamps := map[string]fileStamp{}
	ok := true
	racy := time.Now().Add(-racyWindow).UnixNano()
	err := filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, name)
		if err != nil {
			return err
		}
		st, found := stampOf(info)
		ok = ok && found && (info.Mode().IsRegular() || info.IsDir()) && st.ctime < racy && st.mtime < racy
		if info.IsDir() {
			rel += "/"
		}
		stamps[rel] = st
		return nil
	})
	if err != nil || !ok {
		return "", err
	}
	return stampsDigest(stamps), nil
}

type stampedSum struct {
	stamp fileStamp
	sum   [32]byte
}

// fileStamp is what the kernel says of a file that any change to it
// changes: its device and inode, size, mode, modification time and, as no
// process can set it, its change time (ctime), which every write, chmod,
// utimes and link count change moves to the present.
type fileStamp struct {
	dev, ino     uint64
	size         int64
	mode         fs.FileMode
	mtime, ctime int64 // Unix nanoseconds
}

// racyWindow is how far before a hash a file's stamp must be for the
// stamp to vouch for its content later. The kernel's file times come from
// a coarse clock (a few milliseconds): a file changed in the same tick as
// it was last changed before keeps its ctime. A file changed within
// racyWindow of the hash that recorded it is read again, as git does
// with a "racily clean" index entry.
var racyWindow = time.Second

// treeHashSince is treeHash, reading only the files that prev does not
// vouch for: those that are not in it, whose stamp differs from the one
// prev recorded, or that were changed within racyWindow before prev
// hashed them. prev is only used for the directory it was made of. It
// returns the hash and a snapshot of what it read and what prev vouched
// for, or a nil one where this platform gives no stamps.
func treeHashSince(dir, prefix string, prev *treeSnapshot) (string, *treeSnapshot, error) {
	if prev != nil && prev.dir != dir {
		prev = nil
	}
	start := time.Now()
	type file struct {
		rel   string
		stamp fileStamp
		ok    bool // the stamp is known
	}
	var (
		files   []file // to read
		known   = map[string]stampedSum{}
		dirs    = map[string]fileStamp{}
		dirsOK  = true // every directory's stamp is known
		dirRacy = false
	)
	err := filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, name)
			if err != nil {
				return err
			}
			stamp, ok := stampOf(info)
			dirsOK = dirsOK && ok && info.IsDir()
			if racy := start.Add(-racyWindow).UnixNano(); stamp.ctime >= racy || stamp.mtime >= racy {
				dirRacy = true
			}
			dirs[rel+"/"] = stamp
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file (%v)", name, d.Type())
		}
		rel, err := filepath.Rel(dir, name)
		if err != nil {
			return err
		}
		// Lstat, before anything is read: a change after it changes the
		// stamp.
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file (%v)", name, info.Mode().Type())
		}
		stamp, ok := stampOf(info)
		if ok && prev != nil {
			if s, found := prev.files[rel]; found && s.stamp == stamp {
				known[rel] = s
				return nil
			}
		}
		files = append(files, file{rel, stamp, ok})
		return nil
	})
	if err != nil {
		return "", nil, fmt.Errorf("hash %s: %w", dir, err)
	}
	name := func(rel string) string { return path.Join(prefix, filepath.ToSlash(rel)) }
	if beforeHashForTest != nil {
		beforeHashForTest()
	}
	sums, err := hashAll(files, func(f file) (string, io.ReadCloser, error) {
		r, err := os.Open(filepath.Join(dir, f.rel))
		if err != nil || !f.ok {
			return name(f.rel), r, err
		}
		// What is read must be the file whose stamp the walk took, as it
		// was then: not another one put in its place (a directory on the
		// way renamed, which changes no file's stamp), nor changed while
		// it is read.
		s := &stampedFile{File: r, want: f.stamp}
		if err := s.check(); err != nil {
			r.Close()
			return name(f.rel), nil, err
		}
		return name(f.rel), s, nil
	})
	if err != nil {
		return "", nil, fmt.Errorf("hash %s: %w", dir, err)
	}
	snap := &treeSnapshot{dir: dir, files: known, all: !dirRacy, dirs: dirs}
	if !dirsOK {
		snap = nil
	}
	for _, f := range files {
		if snap == nil {
			break
		}
		if !f.ok {
			snap = nil
			break
		}
		// A file changed just before the hash may change again without
		// moving its ctime: it is not vouched for.
		if racy := start.Add(-racyWindow).UnixNano(); f.stamp.ctime >= racy || f.stamp.mtime >= racy {
			snap.all = false
			continue
		}
		snap.files[f.rel] = stampedSum{f.stamp, sums[name(f.rel)]}
	}
	for rel, s := range known {
		sums[name(rel)] = s.sum
	}
	return hash1(sums), snap, nil
}

// beforeHashForTest, if set, is called by treeHashSince between its walk
// and its reading of the files.
var beforeHashForTest func()

// stampedFile reads a file opened by name that must have the stamp want,
// from its opening to the end of its reading.
type stampedFile struct {
	*os.File
	want fileStamp
}

// errChangedWhileHashed is a file that was not, while it was read, the
// file whose stamp was taken before.
var errChangedWhileHashed = errors.New("replaced or changed while it was hashed; try again, and find what changes the module cache")

func (s *stampedFile) check() error {
	info, err := s.File.Stat()
	if err != nil {
		return err
	}
	if stamp, ok := stampOf(info); !ok || stamp != s.want {
		return errChangedWhileHashed
	}
	return nil
}

// Read reads the file, and at its end checks its stamp again.
func (s *stampedFile) Read(b []byte) (int, error) {
	n, err := s.File.Read(b)
	if err == io.EOF {
		if cerr := s.check(); cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

// stampOf returns the stamp of the file info describes, from its
// syscall.Stat_t, whose fields are named alike on Linux and the BSDs
// (Dev, Ino, Ctim); false where there is none (Windows, macOS).
func stampOf(info fs.FileInfo) (fileStamp, bool) {
	v := reflect.ValueOf(info.Sys())
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return fileStamp{}, false
	}
	v = v.Elem()
	dev, ok1 := intField(v, "Dev")
	ino, ok2 := intField(v, "Ino")
	ctim := v.FieldByName("Ctim")
	if !ok1 || !ok2 || ctim.Kind() != reflect.Struct {
		return fileStamp{}, false
	}
	sec, ok3 := intField(ctim, "Sec")
	nsec, ok4 := intField(ctim, "Nsec")
	if !ok3 || !ok4 {
		return fileStamp{}, false
	}
	return fileStamp{
		dev: dev, ino: ino,
		size:  info.Size(),
		mode:  info.Mode(),
		mtime: info.ModTime().UnixNano(),
		ctime: time.Unix(int64(sec), int64(nsec)).UnixNano(),
	}, true
}

// intField returns the integer field name of the struct v, as a uint64.
func intField(v reflect.Value, name string) (uint64, bool) {
	f := v.FieldByName(name)
	switch {
	case f.CanUint():
		return f.Uint(), true
	case f.CanInt():
		return uint64(f.Int()), true
	}
	return 0, false
}

// Dependencies returns the build's inputs besides the source, each by the
// SHA-256 of what was downloaded: the toolchain's zip, every other module's
// zip the build reads, and the go.mod of every module in its graph (the
// source's too), named as go.sum names them.
func (in *GoInputs) Dependencies() []lantern.Dependency {
	tc := in.Toolchain
	deps := []lantern.Dependency{{
		Name:   tc.Module + "@" + tc.Version,
		URI:    purl(tc.Module, tc.Version, ""),
		Digest: tc.Zip,
	}}
	for _, m := range in.Modules {
		if !m.Zip.IsZero() && !(m.Path == in.Spec.Module && m.Version == in.Spec.Version) {
			deps = append(deps, lantern.Dependency{Name: m.String(), URI: purl(m.Path, m.Version, ""), Digest: m.Zip})
		}
		deps = append(deps, lantern.Dependency{Name: m.String() + "/go.mod", URI: purl(m.Path, m.Version, "go.mod"), Digest: m.Mod})
	}
	return deps
}

// purl is the package URL of a Go module version, or of a file of it.
func purl(mod, version, subpath string) string {
	u := "pkg:golang/" + mod + "@" + strings.ReplaceAll(version, "+", "%2B")
	if subpath != "" {
		u += "#" + subpath
	}
	return u
}

// Environment returns the build's environment as the sandbox sees it: the
// recipe's, filled in for in. (BuildKit adds its trace variables, which
// differ from run to run and which a Go build does not embed.)
func (in *GoInputs) Environment(r *Recipe) (map[string]string, error) {
	if r == nil || r.Go == nil {
		return nil, errors.New("want the go recipe")
	}
	p := r.Go.Paths
	_, env, _, err := buildCommand(r, in, p.Toolchain, p.GoProxy, p.Tmp, p.Out)
	return env, err
}

// BinaryPath returns where the built command is in the output directory,
// slash-separated: as go install places it, GOBIN, or GOPATH's bin, in a
// GOOS_GOARCH directory when it cross-compiles.
func (in *GoInputs) BinaryPath(r *Recipe) (string, error) {
	env, err := in.Environment(r)
	if err != nil {
		return "", err
	}
	out := r.Go.Paths.Out
	exe := execName(in.Spec.Package)
	if in.Spec.GOOS == "windows" {
		exe += ".exe"
	}
	dir := env["GOBIN"]
	if dir == "" {
		gopath, _, _ := strings.Cut(env["GOPATH"], ":")
		dir = path.Join(gopath, "bin")
		if in.Spec.GOOS != "linux" || in.Spec.GOARCH != in.HostArch {
			dir = path.Join(dir, in.Spec.GOOS+"_"+in.Spec.GOARCH)
		}
	}
	rel, ok := strings.CutPrefix(path.Join(dir, exe), out+"/")
	if !ok {
		return "", fmt.Errorf("recipe %s installs %s into %s, outside the output directory %s", r.BuildType, exe, dir, out)
	}
	return rel, nil
}

// execName is the go command's name for the executable of a main package
// (cmd/go/internal/load.DefaultExecName): the last element of its path, or,
// when that is a major version (example.com/cmd/v2), the one before.
func execName(importPath string) string {
	elem := path.Base(importPath)
	if elem != importPath && isVersionElement(elem) {
		elem = path.Base(path.Dir(importPath))
	}
	return elem
}

func isVersionElement(s string) bool {
	if len(s) < 2 || s[0] != 'v' || s[1] == '0' || s == "v1" {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// checkedToolchains remembers, for this process only and in memory only,
// the toolchains it checked: what each check read of the zip and the tree
// (GoToolchain's zipStamp and snapshot). The check of the same toolchain
// for a later build, by the same worker or another one in the process
// (lantern up runs several), then reads again only the files whose stamps
// changed since — a toolchain is 250 MB in 13,000 files, and its zip must
// be inflated to be checked — and refuses what a full check refuses. Its
// records are never written anywhere a local process could change them;
// the files are, and a change to one changes its stamp.
var checkedToolchains = &toolchainMemo{}

// maxCheckedToolchains bounds checkedToolchains: a record is a few MB.
const maxCheckedToolchains = 4

type toolchainMemo struct {
	mu sync.Mutex
	m  map[toolchainMemoKey]GoToolchain
}

type toolchainMemoKey struct{ modCache, module, version string }

// get returns the toolchain module@version last checked in the module
// cache modCache, or nil.
func (c *toolchainMemo) get(modCache, module, version string) *GoToolchain {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tc, ok := c.m[toolchainMemoKey{modCache, module, version}]; ok && tc.snapshot != nil {
		return &tc
	}
	return nil
}

// put remembers tc, just checked in the module cache modCache.
func (c *toolchainMemo) put(modCache string, tc GoToolchain) {
	if tc.snapshot == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := toolchainMemoKey{modCache, tc.Module, tc.Version}
	if c.m == nil {
		c.m = map[toolchainMemoKey]GoToolchain{}
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= maxCheckedToolchains {
		for old := range c.m { // any other one
			delete(c.m, old)
			break
		}
	}
	c.m[k] = tc
}

// forget drops the record of module@version in modCache, whose check
// failed.
func (c *toolchainMemo) forget(modCache, module, version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, toolchainMemoKey{modCache, module, version})
}
