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
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lanternfarm/lantern"
)

// ErrObjectNotFound reports a digest that names no object in any bucket.
// GetObject's error wraps it and lantern.ErrNoObject.
var ErrObjectNotFound = jetstream.ErrObjectNotFound

const (
	// spoolInMemory is the most bytes PutObject holds in memory while it
	// hashes; larger objects spill to a temporary file.
	spoolInMemory = 4 << 20
	// maxObjectRead bounds reading one object when the caller's ctx has no
	// deadline (jetstream would otherwise cut the read at its 5 s default).
	maxObjectRead = 24 * time.Hour
)

// ensureBucket creates a builder's object store bucket, or leaves it as
// it is, but for Direct Get, which it turns off: a builder's own requests
// read its bucket, and a Direct Get answers with a message's own headers,
// whatever the builder stored there.
func (q *Queue) ensureBucket(ctx context.Context, bucket, desc string) error {
	if _, err := q.js.ObjectStore(ctx, bucket); err != nil {
		_, err := q.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      bucket,
			Description: desc,
			Storage:     jetstream.FileStorage,
			Replicas:    q.cfg.Replicas,
		})
		if err != nil {
			return fmt.Errorf("create object store %s: %w", bucket, err)
		}
	}
	st, err := q.js.Stream(ctx, "OBJ_"+bucket)
	if err != nil {
		return fmt.Errorf("object store %s: %w", bucket, err)
	}
	if cfg := st.CachedInfo().Config; cfg.AllowDirect {
		cfg.AllowDirect = false
		if _, err := q.js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("object store %s: turn Direct Get off: %w", bucket, err)
		}
	}
	return nil
}

// bucket returns the bucket PutObject writes to: the builder's own for a
// builder's connection, the farm's (LANTERN_OBJECTS) otherwise.
func (q *Queue) bucket(ctx context.Context) (jetstream.ObjectStore, error) {
	q.objMu.Lock()
	defer q.objMu.Unlock()
	if q.objects != nil {
		return q.objects, nil
	}
	name := BucketObjects
	if q.cfg.Role == RoleBuilder {
		name = BuilderBucket(q.cfg.Builder)
	}
	obs, err := q.js.ObjectStore(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("object store %s: %w: it does not exist; the farm's scheduler makes it when it sets the farm up or adds the builder", name, ErrNotSetUp)
	}
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", name, err)
	}
	q.objects = obs
	return obs, nil
}

// PutObject stores the bytes of r under their digest, "sha256:<hex>", and
// returns the digest: a builder's connection in its own bucket
// (BuilderBucket), the scheduler's in LANTERN_OBJECTS. name (a file name,
// "build.log") is kept as the object's description for people browsing the
// bucket. Bytes that are there already are not sent again: the first
// upload's name stays.
func (q *Queue) PutObject(ctx context.Context, name string, r io.Reader) (lantern.Digest, error) {
	objects, err := q.bucket(ctx)
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("put object %q: %w", name, err)
	}
	body, d, cleanup, err := spool(r)
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("put object %q: %w", name, err)
	}
	defer cleanup()
	key := d.String()
	if _, err := objects.GetInfo(ctx, key); err == nil {
		return d, nil
	} else if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return lantern.Digest{}, fmt.Errorf("put object %q (%s): %w", name, d.Short(), err)
	}
	if _, err := objects.Put(ctx, jetstream.ObjectMeta{Name: key, Description: name}, body); err != nil {
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

// GetObject opens the object named d, from the farm's bucket or any
// builder's. Each builder uploads to a bucket of its own, so a builder can
// put anything under any name there: an object is taken only once its bytes
// hashed to d, and a bucket whose object does not is passed over (and
// logged) for the next. A missing object is ErrObjectNotFound.
func (q *Queue) GetObject(ctx context.Context, d lantern.Digest) (io.ReadCloser, error) {
	if d.IsZero() {
		return nil, errors.New("get object: digest is empty")
	}
	var cancel context.CancelFunc = func() {}
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel = context.WithTimeout(ctx, maxObjectRead)
	}
	defer cancel()
	buckets, err := q.objectBuckets(ctx)
	if err != nil {
		return nil, fmt.Errorf("get object %s: %w", d, err)
	}
	var lastErr error
	var forged []string // buckets whose object named d holds other bytes
	for _, b := range buckets {
		obs, err := q.js.ObjectStore(ctx, b)
		if err != nil {
			lastErr = err
			continue
		}
		info, err := obs.GetInfo(ctx, d.String())
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			continue
		}
		if err != nil {
			lastErr = err
			continue
		}
		// What a builder put in its bucket is the builder's word: an
		// object larger than any the farm takes is not read, and one whose
		// chunks do not come is given up on, so that a planted object
		// neither fills the disk nor holds the reader up for long.
		if info.Size > MaxObject {
			q.log.Warn("object store: an object larger than any the farm takes; passed over", "bucket", b, "name", d, "bytes", info.Size)
			forged = append(forged, b)
			continue
		}
		bctx, cancel := context.WithTimeout(ctx, readTime(info.Size))
		res, err := obs.Get(bctx, d.String())
		if err != nil {
			cancel()
			lastErr = err
			continue
		}
		body, got, cleanup, err := spool(io.LimitReader(res, int64(info.Size)))
		res.Close()
		cancel()
		if err != nil {
			lastErr = fmt.Errorf("in bucket %s: %w", b, err)
			continue
		}
		if got != d {
			cleanup()
			q.log.Warn("object store: an object's bytes are not those its name says; passed over", "bucket", b, "name", d, "bytes", got)
			forged = append(forged, b)
			continue
		}
		return &spooled{Reader: body, cleanup: cleanup}, nil
	}
	if lastErr != nil {
		return nil, fmt.Errorf("get object %s: %w", d, lastErr)
	}
	if len(forged) > 0 {
		// As good as none: what is there is not d.
		return nil, fmt.Errorf("get object %s: %w: only other bytes under its name, in %s: %w", d, lantern.ErrNoObject, strings.Join(forged, ", "), lantern.ErrDigestMismatch)
	}
	return nil, fmt.Errorf("get object %s: %w (%w)", d, lantern.ErrNoObject, jetstream.ErrObjectNotFound)
}

// objectBuckets lists the buckets objects are read from: the farm's first,
// then the builders', in name order.
func (q *Queue) objectBuckets(ctx context.Context) ([]string, error) {
	out := []string{BucketObjects}
	names := q.js.ObjectStoreNames(ctx)
	var builders []string
	for n := range names.Name() {
		if strings.HasPrefix(n, BucketPrefix) {
			builders = append(builders, n)
		}
	}
	if err := names.Error(); err != nil {
		return nil, err
	}
	slices.Sort(builders)
	return append(out, builders...), nil
}

// MaxObject is the largest object GetObject reads, in bytes: more than a
// worker uploads (1 GiB by default) and the scheduler's reports.
const MaxObject = 4 << 30

// readTime is how long reading an object of size bytes from one bucket may
// take: a minute, and a second more per MiB.
var readTime = func(size uint64) time.Duration {
	return time.Minute + time.Duration(size>>20)*time.Second
}

// spooled is an object read to its end and checked, read back.
type spooled struct {
	io.Reader
	cleanup func()
}

func (s *spooled) Close() error {
	s.cleanup()
	return nil
}
