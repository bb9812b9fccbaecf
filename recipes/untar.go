package recipes

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"

	"github.com/lanternfarm/lantern/internal/unpack"
)

// untar unpacks the tarball at file (plain, gzip, bzip2 or zstd) into dir,
// which it creates, with unpack.Tar: nowhere but in dir. The unpacked files
// may hold max bytes in all.
func untar(file, dir string, max int64) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := decompress(bufio.NewReader(f))
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	return unpack.Tar(r, dir, max, func(max int64) error {
		return fmt.Errorf("%w: the unpacked files hold more than %d bytes", ErrSourceTooLarge, max)
	})
}

// decompress returns the tar stream in r, by its first bytes: gzip, bzip2,
// zstd, or none.
func decompress(r *bufio.Reader) (io.Reader, error) {
	magic, _ := r.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return gzip.NewReader(r)
	case bytes.HasPrefix(magic, []byte("BZh")):
		return bzip2.NewReader(r), nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return z.IOReadCloser(), nil
	}
	return r, nil
}
