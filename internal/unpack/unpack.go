// Package unpack unpacks tar streams that Lantern does not trust — a
// source tarball (recipes), a build's exported result (worker/solve) —
// into a directory, and nowhere else, up to a size cap.
package unpack

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// maxEntries caps the entries of a tar stream.
const maxEntries = 1 << 20

// Tar unpacks the tar stream r into dir, which exists. Every entry is
// written through an os.Root of dir, so that no name and no symbolic link
// can put a file outside it. It keeps regular files, directories, symbolic
// and hard links, with their permission bits (not set-id ones) and
// modification times; it skips devices and FIFOs. Past max bytes of files,
// or maxEntries entries, it stops with the error tooLarge makes.
func Tar(r io.Reader, dir string, max int64, tooLarge func(max int64) error) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	var total int64
	type dirTime struct {
		name string
		hdr  *tar.Header
	}
	var dirs []dirTime
	for n := 0; ; n++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if n >= maxEntries {
			return fmt.Errorf("%w (more than %d entries)", tooLarge(max), maxEntries)
		}
		name, ok := entryName(h.Name)
		if !ok {
			return fmt.Errorf("entry %q: want a relative path without ..", h.Name)
		}
		if name == "." {
			continue
		}
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		mode := fs.FileMode(h.Mode) & fs.ModePerm
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			// Its mode and time once its files are in.
			dirs = append(dirs, dirTime{name, h})
			continue
		case tar.TypeReg:
			total += h.Size
			if total > max {
				return tooLarge(max)
			}
			if err := writeEntry(root, name, tr); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
		case tar.TypeSymlink:
			if err := root.Symlink(h.Linkname, name); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			continue // no times or modes of its own to set
		case tar.TypeLink:
			target, ok := entryName(h.Linkname)
			if !ok || target == "." {
				return fmt.Errorf("entry %q: hard link to %q: want a file of the tarball", h.Name, h.Linkname)
			}
			if err := root.Link(target, name); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			continue
		default: // devices, FIFOs: nothing a source needs
			continue
		}
		if err := root.Chmod(name, mode); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		if err := root.Chtimes(name, h.ModTime, h.ModTime); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		mode := fs.FileMode(d.hdr.Mode)&fs.ModePerm | 0o700 // the worker must read it back
		if err := root.Chmod(d.name, mode); err != nil {
			return fmt.Errorf("entry %q: %w", d.hdr.Name, err)
		}
		if err := root.Chtimes(d.name, d.hdr.ModTime, d.hdr.ModTime); err != nil {
			return fmt.Errorf("entry %q: %w", d.hdr.Name, err)
		}
	}
	return nil
}

func writeEntry(root *os.Root, name string, r io.Reader) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// entryName cleans a tar entry's name; it refuses absolute names and
// names that climb out with "..".
func entryName(name string) (string, bool) {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) {
		return "", false
	}
	clean := path.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", false
	}
	return clean, true
}
