package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// upLockFile is the file in DATA/up that a running 'lantern up' holds
// locked (flock, exclusive) for as long as it runs: the kernel lets go of
// the lock however up ends, so a lock held is an up alive, where the API
// file or the running-up name may be left over from one killed.
const upLockFile = "running.lock"

// holdUpLock takes the lock of up's directory dir (DATA/up), or says that
// another up holds it; release lets go of it.
func holdUpLock(dir string) (release func(), err error) {
	name := filepath.Join(dir, upLockFile)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another lantern up runs with this data directory (it holds %s): stop it first, or give this one another --data", printable(name))
		}
		return nil, fmt.Errorf("lock the data directory: %s: %w", printable(name), err)
	}
	return func() { f.Close() }, nil
}

// upRunning says whether a 'lantern up' runs with up directory dir, by
// its lock: held, it runs.
func upRunning(dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, upLockFile), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return false
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false
	}
	return errors.Is(err, syscall.EWOULDBLOCK)
}

// ownFile says whether path (not followed if a symbolic link) is the
// user's own and writable by nobody else: what rebuild needs of a data
// directory it was not given but found, before it signs with its key.
func ownFile(path string) bool {
	st, err := os.Lstat(path)
	if err != nil {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(sys.Uid) == os.Geteuid() && st.Mode().Perm()&0o022 == 0 && st.Mode()&os.ModeSymlink == 0
}

// ownDir is ownFile of a directory, following a symbolic link to it (a
// --data given through one).
func ownDir(path string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(sys.Uid) == os.Geteuid() && st.Mode().Perm()&0o022 == 0
}

// readSmallFile reads a regular file of at most max bytes, not following a
// symbolic link and not waiting on a FIFO.
func readSmallFile(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", printable(path))
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than %d bytes", printable(path), max)
	}
	return b, nil
}

// plainPath says whether p is an absolute, clean path of printable
// characters only.
func plainPath(p string) bool {
	if !filepath.IsAbs(p) || p != filepath.Clean(p) || !utf8.ValidString(p) {
		return false
	}
	for _, r := range p {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// upElsewhereName returns the data dir named in file, an upElsewhereFile,
// or "" when it cannot be read as one.
func upElsewhereName(file string) string {
	b, err := readSmallFile(file, 4096)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}
