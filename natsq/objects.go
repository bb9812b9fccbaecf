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

// ensureBucket creates a builder's object store bucket, or brings an
// existing one to the builder's cap (Config.BuilderBucketMaxBytes) with
// Direct Get off: a builder's own requests read its bucket, and a Direct
// Get answers with a message's own headers, whatever the builder stored
// there.
func (q *Queue) ensureBucket(ctx context.Context, bucket, desc string) error {
	if _, err := q.js.ObjectStore(ctx, bucket); err != nil {
		err := q.place(ctx, "object store "+bucket, func(ctx context.Context) error {
			_, err := q.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
				Bucket:      bucket,
				Description: desc,
				Storage:     jetstream.FileStorage,
				Replicas:    q.cfg.Replicas,
				MaxBytes:    q.cfg.BuilderBucketMaxBytes,
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("create object store %s: %w", bucket, explainReplicas(explainLimit(err, "--builder-bucket-max-bytes"), q.cfg.Replicas))
		}
	}
	st, err := q.js.Stream(ctx, "OBJ_"+bucket)
	if err != nil {
		return fmt.Errorf("object store %s: %w", bucket, err)
	}
	if cfg := st.CachedInfo().Config; cfg.AllowDirect || cfg.MaxBytes != q.cfg.BuilderBucketMaxBytes || cfg.Replicas != q.cfg.Replicas {
		cfg.AllowDirect = false
		cfg.MaxBytes = q.cfg.BuilderBucketMaxBytes
		cfg.Replicas = q.cfg.Replicas
		if _, err := q.js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("object store %s: set Direct Get off, its cap and its replicas: %w", bucket, explainReplicas(explainLimit(err, "--builder-bucket-max-bytes"), q.cfg.Replicas))
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
	name := q.bucketName()
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
	body, d, cleanup, err := spool(r)
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("put object %q: %w", name, err)
	}
	defer cleanup()
	key := d.String()
	// An upload the loss of a node cut short is made again, from the
	// start: its chunks so far are the server's to drop (or the sweep's).
	// Each step has its own time: a request whose answer went with a node
	// is given up on after attemptTimeout, an upload after the time its
	// size may take.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rideOut+uploadTime(body))
		defer cancel()
	}
	var pause backoff
	for {
		var objects jetstream.ObjectStore
		there := false
		err = q.retry(ctx, "put object "+d.Short()+": look it up", attemptTimeout, func(ctx context.Context) error {
			var err error
			if objects, err = q.bucket(ctx); err != nil {
				return err
			}
			_, err = objects.GetInfo(ctx, key)
			if errors.Is(err, jetstream.ErrObjectNotFound) {
				return q.checkRoom(ctx, body)
			}
			there = err == nil
			return err
		})
		if err != nil || there {
			break
		}
		if s, ok := body.(io.Seeker); ok {
			if _, err = s.Seek(0, io.SeekStart); err != nil {
				break
			}
		}
		pctx, cancel := context.WithTimeout(ctx, uploadTime(body))
		_, err = objects.Put(pctx, jetstream.ObjectMeta{Name: key, Description: name}, body)
		cancel()
		if err == nil || !transient(err) || ctx.Err() != nil || q.isClosing() {
			err = explainLimit(err, q.capSetting())
			break
		}
		q.log.Warn("nats: an upload was cut short; a node or leader may be away; retrying", "object", d.Short(), "err", err)
		if !pause.wait(ctx) {
			break
		}
	}
	if err != nil {
		return lantern.Digest{}, fmt.Errorf("put object %q (%s): %w", name, d.Short(), err)
	}
	return d, nil
}

// uploadTime is how long one try of uploading body may take: 15 seconds
// and a second more per MiB.
func uploadTime(body io.Reader) time.Duration {
	size := int64(MaxObject)
	switch b := body.(type) {
	case *bytes.Reader:
		size = b.Size()
	case *os.File:
		if fi, err := b.Stat(); err == nil {
			size = fi.Size()
		}
	}
	return 15*time.Second + time.Duration(size>>20)*time.Second
}

// ErrBucketFull reports an upload that does not fit in the room left in
// its bucket.
var ErrBucketFull = errors.New("object store bucket full")

// checkRoom fails with ErrBucketFull when the spooled body does not fit in
// what is left of the bucket, before anything is sent: an upload the
// server cuts off leaves its first chunks behind, which only the
// scheduler's sweep removes (a builder may not purge its bucket).
func (q *Queue) checkRoom(ctx context.Context, body io.Reader) error {
	var size int64
	switch b := body.(type) {
	case *bytes.Reader:
		size = int64(b.Len())
	case *os.File:
		fi, err := b.Stat()
		if err != nil {
			return err
		}
		size = fi.Size()
	default:
		return nil
	}
	bucket := q.bucketName()
	st, err := q.js.Stream(ctx, "OBJ_"+bucket)
	if err != nil {
		return fmt.Errorf("object store %s: %w", bucket, err)
	}
	info := st.CachedInfo()
	if info.Config.MaxBytes <= 0 {
		return nil
	}
	// Each chunk (128 KiB) and the object's record take some bytes more.
	need := size + (size/(128<<10)+1)*256 + 1024
	if left := info.Config.MaxBytes - int64(info.State.Bytes); need > left {
		return fmt.Errorf("%w: %d bytes do not fit in the %d left of bucket %s (%d bytes); the farm's operator can raise %s", ErrBucketFull, size, max(left, 0), bucket, info.Config.MaxBytes, q.capSetting())
	}
	return nil
}

// bucketName is the name of the bucket PutObject writes to.
func (q *Queue) bucketName() string {
	if q.cfg.Role == RoleBuilder {
		return BuilderBucket(q.cfg.Builder)
	}
	return BucketObjects
}

// capSetting is the scheduler's flag that sets the cap of the bucket
// PutObject writes to.
func (q *Queue) capSetting() string {
	if q.cfg.Role == RoleBuilder {
		return "--builder-bucket-max-bytes"
	}
	return "--bucket-max-bytes"
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

// LogPrefix starts the description of a build log in a builder's bucket,
// as workers upload it ("log of JOB by KEY"). Logs are kept: attestations
// name them as evidence. Every other object of a builder's bucket is an
// output, which the scheduler removes once it has no more use for it
// ([Queue.RemoveOutput], [Queue.RemoveOutputsBefore]). A builder that
// calls its outputs logs keeps them, within its bucket's cap.
const LogPrefix = "log of "

// orphanAge is how old the chunks of an upload that never finished (a
// builder's upload past its bucket's cap, a worker that died) are before
// RemoveOutputsBefore removes them: no upload in progress is that slow.
var orphanAge = time.Hour

// RemoveOutput removes the output d from every builder's bucket that
// holds it; a build log of the same name is kept.
func (q *Queue) RemoveOutput(ctx context.Context, d lantern.Digest) error {
	buckets, err := q.builderBuckets(ctx)
	if err != nil {
		return fmt.Errorf("remove output %s: %w", d, err)
	}
	for _, b := range buckets {
		obs, err := q.js.ObjectStore(ctx, b)
		if err != nil {
			return fmt.Errorf("remove output %s: %w", d, err)
		}
		info, err := obs.GetInfo(ctx, d.String())
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("remove output %s from %s: %w", d, b, err)
		}
		if strings.HasPrefix(info.Description, LogPrefix) {
			continue
		}
		if err := q.removeObject(ctx, b, obs, info); err != nil {
			return fmt.Errorf("remove output %s from %s: %w", d, b, err)
		}
	}
	return nil
}

// RemoveOutputsBefore removes from every builder's bucket the outputs
// uploaded before t, and the chunks of uploads that never finished (last
// written to an hour ago or more), and reports how many outputs it
// removed. Build logs are kept.
func (q *Queue) RemoveOutputsBefore(ctx context.Context, t time.Time) (int, error) {
	buckets, err := q.builderBuckets(ctx)
	if err != nil {
		return 0, fmt.Errorf("remove old outputs: %w", err)
	}
	// By the server's clock, which wrote them, whatever t is.
	orphansBefore := time.Now().Add(-orphanAge)
	n := 0
	for _, b := range buckets {
		obs, err := q.js.ObjectStore(ctx, b)
		if err != nil {
			return n, fmt.Errorf("remove old outputs of %s: %w", b, err)
		}
		infos, err := obs.List(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
			return n, fmt.Errorf("remove old outputs of %s: %w", b, err)
		}
		live := map[string]bool{}
		for _, info := range infos {
			if strings.HasPrefix(info.Description, LogPrefix) || !info.ModTime.Before(t) {
				live[info.NUID] = true
				continue
			}
			if err := q.removeObject(ctx, b, obs, info); err != nil {
				return n, fmt.Errorf("remove old outputs of %s: %s: %w", b, info.Name, err)
			}
			n++
		}
		if err := q.removeOrphans(ctx, b, live, orphansBefore); err != nil {
			return n, fmt.Errorf("remove old outputs of %s: %w", b, err)
		}
	}
	return n, nil
}

// removeObject removes an object of bucket: its chunks first, which frees
// the room that the delete marker then takes in a full bucket.
func (q *Queue) removeObject(ctx context.Context, bucket string, obs jetstream.ObjectStore, info *jetstream.ObjectInfo) error {
	st, err := q.js.Stream(ctx, "OBJ_"+bucket)
	if err != nil {
		return err
	}
	if info.NUID != "" {
		if err := st.Purge(ctx, jetstream.WithPurgeSubject("$O."+bucket+".C."+info.NUID)); err != nil {
			return err
		}
	}
	return obs.Delete(ctx, info.Name)
}

// removeOrphans purges the chunks in bucket of objects that are not live
// (no upload finished them, or their delete did not) and were last written
// to before t.
func (q *Queue) removeOrphans(ctx context.Context, bucket string, live map[string]bool, t time.Time) error {
	st, err := q.js.Stream(ctx, "OBJ_"+bucket)
	if err != nil {
		return err
	}
	prefix := "$O." + bucket + ".C."
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return err
	}
	for subj := range info.State.Subjects {
		if live[strings.TrimPrefix(subj, prefix)] {
			continue
		}
		m, err := st.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !m.Time.Before(t) {
			continue
		}
		q.log.Info("object store: removing the chunks of an upload that never finished", "bucket", bucket, "subject", subj)
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return err
		}
	}
	return nil
}

// builderBuckets lists the builders' buckets.
func (q *Queue) builderBuckets(ctx context.Context) ([]string, error) {
	all, err := q.objectBuckets(ctx)
	if err != nil {
		return nil, err
	}
	return all[1:], nil
}
