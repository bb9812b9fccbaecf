package boltstore

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

// Page sizes: what a Page with no Count gets, and the most one page holds.
const (
	defaultCount = 50
	maxCount     = 1000
)

// Key parts. Every key is built by appending parts to a byte slice; the
// parts are fixed-length (digests, times, sequence numbers) or strings that
// end in a 0 byte, so that a key prefix always selects exactly one value of
// each leading part.

func appendDigest(dst []byte, d lantern.Digest) []byte {
	sum := d.Sum()
	return append(dst, sum[:]...)
}

// appendText appends s and its 0 terminator. Callers check with checkText that s
// holds no 0 byte.
func appendText(dst []byte, s string) []byte {
	return append(append(dst, s...), 0)
}

// appendTime appends t as 12 bytes that sort as times do, for any time
// (UnixNano would overflow before 1678 and after 2262, and the zero Time is
// year 1): the Unix seconds with the sign bit flipped, then the nanoseconds.
func appendTime(dst []byte, t time.Time) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(dst, uint32(t.Nanosecond()))
}

func appendSeq(dst []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, seq)
}

const (
	digestLen = 32
	timeLen   = 12
	seqLen    = 8
)

// checkText checks that a string that goes into a key holds no 0 byte, which
// would let one key prefix select the wrong record. Validated claims never
// hold one (names, versions, labels and job ids are printable).
func checkText(field, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s %q: has a 0 byte", field, s)
	}
	return nil
}

func digestFromKey(k []byte) lantern.Digest {
	var sum [digestLen]byte
	copy(sum[:], k)
	return lantern.DigestFromSum(sum)
}

// pageCount is the number of items a page holds.
func pageCount(n int) int {
	switch {
	case n <= 0:
		return defaultCount
	case n > maxCount:
		return maxCount
	}
	return n
}

// A cursor is the base64url of the last key a page returned: the next page
// starts after it. It stays valid when records are added, since keys never
// change.
func encodeCursor(k []byte) string { return base64.RawURLEncoding.EncodeToString(k) }

func decodeCursor(cursor string, prefix []byte) ([]byte, error) {
	k, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || !bytes.HasPrefix(k, prefix) {
		return nil, fmt.Errorf("cursor %q: %w: not a cursor of this listing; start again without one", truncate(cursor), scheduler.ErrBadCursor)
	}
	return k, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// scan calls fn with the keys and values of b under prefix that come after
// page's cursor, in key order or, with desc, in reverse, until it has seen
// the page's count of them. It returns the cursor of the next page, or ""
// when there is no next page. It reads only the keys it returns and one
// more, so a page costs the same at any depth.
func scan(b *bolt.Bucket, prefix []byte, page scheduler.Page, desc bool, fn func(k, v []byte) error) (string, error) {
	count := pageCount(page.Count)
	var after []byte
	if page.Cursor != "" {
		var err error
		if after, err = decodeCursor(page.Cursor, prefix); err != nil {
			return "", err
		}
	}
	c := b.Cursor()
	var k, v []byte
	switch {
	case !desc && after == nil:
		k, v = c.Seek(prefix)
	case !desc:
		if k, v = c.Seek(after); bytes.Equal(k, after) {
			k, v = c.Next()
		}
	case after == nil:
		k, v = seekLast(c, prefix)
	default:
		// The key before the first one at or after the cursor, whether or
		// not the cursor's key is still there.
		if k, _ = c.Seek(after); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
	}
	var last []byte
	for n := 0; k != nil && bytes.HasPrefix(k, prefix); n++ {
		if n == count {
			return encodeCursor(last), nil
		}
		if err := fn(k, v); err != nil {
			return "", err
		}
		last = k
		if desc {
			k, v = c.Prev()
		} else {
			k, v = c.Next()
		}
	}
	return "", nil
}

// each calls fn with every key and value of b under prefix, in key order.
func each(b *bolt.Bucket, prefix []byte, fn func(k, v []byte) error) error {
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// seekLast moves c to the last key under prefix, or to the key before
// where it would be.
func seekLast(c *bolt.Cursor, prefix []byte) ([]byte, []byte) {
	end := prefixEnd(prefix)
	if end == nil {
		return c.Last()
	}
	if k, _ := c.Seek(end); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// prefixEnd returns the least key greater than every key with prefix, or nil
// if there is none (an empty prefix, or one of only 0xff bytes).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
