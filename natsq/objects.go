package natsq

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

// ErrObjectNotFound reports a digest that names no object in LANTERN_OBJECTS.
// GetObject's error wraps it and scheduler.ErrNoObject.
var ErrObjectNotFound = jetstream.ErrObjectNotFound

const (
	// spoolInMemory is the most bytes PutObject holds in memory while it
	// hashes; larger objects spill to a temporary file.
	spoolInMemory = 4 << 20
	// maxObjectRead bounds reading one object when the caller's ctx has no
	// deadline (jetstream would otherwise cut the read at its 5 s default).
	maxObjectRead = 24 * time.Hour
)

// PutObject stores the bytes of r in LANTERN_OBJECTS under their digest,
// "sha256:<hex>", and returns the digest. name (a file name, "build.log") is
// kept as the object's description for people browsing the bucket. Bytes
// that are there already are not sent again: the first upload's name stays.
func (q *Queue) PutObject(ctx context.Context, name string, r io.Reader) (lantern.Digest, error) {
	body, d, cleanup, err := spool(r)
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("put object %q: %w", name, err)
	}
	defer cleanup()
	key := d.String()
	if _, err := q.objects.GetInfo(ctx, key); err == nil {
		return d, nil
	} else if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return lantern.Digest{}, fmt.Errorf("put object %q (%s): %w", name, d.Short(), err)
	}
	if _, err := q.objects.Put(ctx, jetstream.ObjectMeta{Name: key, Description: name}, body); err != nil {
		return lantern.Digest{}, fmt.Errorf("put object %q (%s): %w", name, d.Short(), err)
	}
	return d, nil
}

// spool reads r to its end, hashing it, and returns a reader of the same
// bytes: from memory, or from a temporary file that cleanup removes.
func spool(r io.Reader) (io.Reader, lantern.Digest, func(), error) {
	h := sha256.New()
	var buf bytes.Buffer
	n, err := io.Copy(io.MultiWriter(&buf, h), io.LimitReader(r, spoolInMemory+1))
	if err != nil {
		return nil, lantern.Digest{}, nil, err
	}
	if n <= spoolInMemory {
		return bytes.NewReader(buf.Bytes()), digestOf(h), func() {}, nil
	}
	f, err := os.CreateTemp("", "lantern-object-*")
	if err != nil {
		return nil, lantern.Digest{}, nil, err
	}
	cleanup := func() {
		f.Close()
		os.Remove(f.Name())
	}
	if _, err := f.Write(buf.Bytes()); err != nil { // hashed already
		cleanup()
		return nil, lantern.Digest{}, nil, err
	}
	if _, err := io.Copy(io.MultiWriter(f, h), r); err != nil {
		cleanup()
		return nil, lantern.Digest{}, nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, lantern.Digest{}, nil, err
	}
	return f, digestOf(h), cleanup, nil
}

func digestOf(h hash.Hash) lantern.Digest {
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return lantern.DigestFromSum(sum)
}

// GetObject opens the object named d. The reader checks the bytes against
// d as it goes and fails with lantern.ErrDigestMismatch at the end if they
// differ; ctx must last until the reader is closed. A missing object is
// ErrObjectNotFound.
func (q *Queue) GetObject(ctx context.Context, d lantern.Digest) (io.ReadCloser, error) {
	if d.IsZero() {
		return nil, errors.New("get object: digest is empty")
	}
	var cancel context.CancelFunc = func() {}
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel = context.WithTimeout(ctx, maxObjectRead)
	}
	res, err := q.objects.Get(ctx, d.String())
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		cancel()
		return nil, fmt.Errorf("get object %s: %w (%w)", d, scheduler.ErrNoObject, err)
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("get object %s: %w", d, err)
	}
	return &checkedReader{rc: res, h: sha256.New(), want: d, cancel: cancel}, nil
}

// checkedReader checks what it reads against a digest.
type checkedReader struct {
	rc     io.ReadCloser
	h      hash.Hash
	want   lantern.Digest
	cancel context.CancelFunc
}

func (r *checkedReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.h.Write(p[:n])
	if err == io.EOF {
		if got := digestOf(r.h); got != r.want {
			return n, fmt.Errorf("object %s: read bytes of %s: %w", r.want, got, lantern.ErrDigestMismatch)
		}
	}
	return n, err
}

func (r *checkedReader) Close() error {
	defer r.cancel()
	return r.rc.Close()
}
