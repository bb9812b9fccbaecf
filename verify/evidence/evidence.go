// Package evidence reads the evidence that package verify weighs: files and
// folders of signed attestations (DSSE envelopes, Sigstore bundles, JSON
// Lines of either, rebuilderd in-toto links), and the signed envelopes a
// Lantern farm serves about an artefact or a source. It only reads and
// splits: nothing it reads is trusted until verify checks its signature.
package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/lanternfarm/lantern/verify"
)

// Limits on what is read.
const (
	// MaxFile bounds one evidence file (a JSON Lines bundle may hold many
	// envelopes).
	MaxFile = 256 << 20
	// MaxPiece bounds one piece of evidence: one envelope, bundle or link.
	MaxPiece = 4 << 20
	// MaxPieces bounds the pieces read from all files together, and from
	// one farm (all its answers).
	MaxPieces = 1 << 20
	// MaxFarmBytes bounds the bytes read from one farm, all its answers
	// together.
	MaxFarmBytes = 256 << 20
)

// ErrTooMuch reports evidence past the limits above.
var ErrTooMuch = errors.New("too much evidence")

// Split cuts the bytes of one file or answer into pieces: the whole of it
// when it is one JSON value (an envelope, a bundle or a link, however it is
// indented), else one piece per non-blank line (JSON Lines), without its
// line end. A line that is too large is kept, to be reported as unreadable where it stands.
func Split(origin string, b []byte) []verify.Piece {
	out, _ := split(nil, origin, b, -1)
	return out
}

// split appends the pieces of b to out, as Split makes them, and fails with
// ErrTooMuch before out holds more than max pieces (if max is not -1): a
// page of tiny lines, well within MaxAnswer, makes millions of pieces.
func split(out []verify.Piece, origin string, b []byte, max int) ([]verify.Piece, error) {
	if json.Valid(b) {
		if max >= 0 && len(out) >= max {
			return out, fmt.Errorf("%s: %w: more than %d pieces", origin, ErrTooMuch, max)
		}
		// Whole, so that the piece's digest is the file's sha256.
		return append(out, verify.Piece{Origin: origin, Raw: cut(b)}), nil
	}
	line := 0
	for len(b) > 0 {
		line++
		l := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		l = cut(l)
		if max >= 0 && len(out) >= max {
			return out, fmt.Errorf("%s: %w: more than %d pieces", origin, ErrTooMuch, max)
		}
		out = append(out, verify.Piece{Origin: origin + ":" + strconv.Itoa(line), Raw: l})
	}
	return out, nil
}

// cut returns b, or a copy of its first MaxPiece+1 bytes if it is longer:
// enough to be reported as too large, without holding all of it.
func cut(b []byte) []byte {
	if len(b) <= MaxPiece {
		return b
	}
	return bytes.Clone(b[:MaxPiece+1])
}

// Files reads each path, a file or every regular file below a folder, and
// splits them into pieces. A file it cannot read is a piece of its own
// whose bytes are empty and whose origin says why, so the decision lists it.
func Files(paths []string) ([]verify.Piece, error) {
	var out []verify.Piece
	for _, path := range paths {
		files, err := walk(path)
		if err != nil {
			return nil, fmt.Errorf("evidence %s: %w", path, err)
		}
		for _, f := range files {
			b, err := readBounded(f, MaxFile)
			if err != nil {
				out = append(out, verify.Piece{Origin: fmt.Sprintf("%s (%v)", f, err)})
				continue
			}
			if out, err = split(out, f, b, MaxPieces); err != nil {
				return nil, fmt.Errorf("evidence %s: %w", path, err)
			}
		}
	}
	return out, nil
}

// walk returns path, or the regular files below it in lexical order.
func walk(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	var out []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return err
	})
	return out, err
}

func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%w: %d bytes, more than an evidence file may hold (%d)", ErrTooMuch, fi.Size(), max)
	}
	b := make([]byte, fi.Size())
	_, err = f.ReadAt(b, 0)
	return b, err
}
