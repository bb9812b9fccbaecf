package boltstore

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

// Sources: the names and versions that claims and attestations are about,
// for the dashboard's list of recent sources and its search.

// noteSource records that a claim or an attestation about src was stored
// at: a source seen for the first time gets its record and its place in
// sources.seq, a source archive seen for the first time is added to the
// record and to sources.digest. Seeing a known archive again costs one Get.
func noteSource(tx *bolt.Tx, src lantern.Source, at time.Time) error {
	key := appendText(appendText(nil, src.Name), src.Version)
	sd := tx.Bucket(bSourcesDigest)
	dkey := append(appendDigest(nil, src.Digest), key...)
	if !src.Digest.IsZero() && has(sd, dkey) {
		return nil
	}
	sb := tx.Bucket(bSources)
	var rec scheduler.SourceRecord
	switch err := get(sb, key, &rec); {
	case errors.Is(err, scheduler.ErrNotFound):
		rec = scheduler.SourceRecord{Name: src.Name, Version: src.Version, Added: at.UTC()}
		seq, err := sb.NextSequence()
		if err != nil {
			return err
		}
		if err := tx.Bucket(bSourcesSeq).Put(appendSeq(nil, seq), key); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if !src.Digest.IsZero() {
		rec.Digests = append(rec.Digests, src.Digest)
		if err := sd.Put(dkey, nil); err != nil {
			return err
		}
	}
	rec.Verdicts = nil // read from the verdicts bucket, never kept here
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return sb.Put(key, v)
}

// has reports whether b has key. Index entries with an empty value need it:
// within the transaction that put them, Get returns nil for them.
func has(b *bolt.Bucket, key []byte) bool {
	k, _ := b.Cursor().Seek(key)
	return bytes.Equal(k, key)
}

// getSource reads the source record at key (name\0 version\0) and the
// verdicts on its labels.
func getSource(tx *bolt.Tx, key []byte, rec *scheduler.SourceRecord) error {
	if err := get(tx.Bucket(bSources), key, rec); err != nil {
		return err
	}
	rec.Verdicts = []lantern.Verdict{}
	return each(tx.Bucket(bVerdicts), key, func(_, v []byte) error {
		var vd lantern.Verdict
		if err := json.Unmarshal(v, &vd); err != nil {
			return err
		}
		markConflicts(&vd, rec.Digests)
		rec.Verdicts = append(rec.Verdicts, vd)
		return nil
	})
}

// Sources pages through the sources that a claim or an attestation is
// about, newest first (by when the first of them was stored), each with its
// verdicts.
func (s *Store) Sources(ctx context.Context, page scheduler.Page) ([]scheduler.SourceRecord, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if page.Cursor != "" {
		if k, err := decodeCursor(page.Cursor, nil); err != nil || len(k) != seqLen {
			return nil, "", fmt.Errorf("sources: cursor %q: %w: not a cursor of this listing; start again without one", truncate(page.Cursor), scheduler.ErrBadCursor)
		}
	}
	sources := []scheduler.SourceRecord{}
	var next string
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		next, err = scan(tx.Bucket(bSourcesSeq), nil, page, true, func(_, key []byte) error {
			var rec scheduler.SourceRecord
			if err := getSource(tx, key, &rec); err != nil {
				return err
			}
			sources = append(sources, rec)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("sources: %w", err)
	}
	return sources, next, nil
}

// SearchSources pages through the sources q selects, ordered by name and
// version. A text query reads every source's key (not its record), so it
// costs a scan of the sources bucket's keys; a digest query reads only the
// keys under its prefix in sources.digest and verdicts.artefact.
func (s *Store) SearchSources(ctx context.Context, q scheduler.SourceQuery, page scheduler.Page) ([]scheduler.SourceRecord, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if page.Cursor != "" {
		k, err := decodeCursor(page.Cursor, nil)
		if _, _, ok := splitSourceKey(k); err != nil || !ok {
			return nil, "", fmt.Errorf("search sources: cursor %q: %w: not a cursor of this listing; start again without one", truncate(page.Cursor), scheduler.ErrBadCursor)
		}
	}
	sources := []scheduler.SourceRecord{}
	var next string
	err := s.db.View(func(tx *bolt.Tx) error {
		var keys [][]byte
		var err error
		switch {
		case q.DigestHex != "":
			keys, next, err = searchDigest(tx, q.DigestHex, page)
		default:
			keys, next, err = searchText(tx, q.Text, page)
		}
		if err != nil {
			return err
		}
		for _, key := range keys {
			var rec scheduler.SourceRecord
			if err := getSource(tx, key, &rec); err != nil {
				return err
			}
			sources = append(sources, rec)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("search sources %+v: %w", q, err)
	}
	return sources, next, nil
}

// searchText returns a page of the keys of the sources whose name@version
// contains text, ignoring case, and the cursor of the next page.
func searchText(tx *bolt.Tx, text string, page scheduler.Page) ([][]byte, string, error) {
	text = strings.ToLower(text)
	count := pageCount(page.Count)
	c := tx.Bucket(bSources).Cursor()
	k, _ := c.First()
	if page.Cursor != "" {
		after, err := decodeCursor(page.Cursor, nil)
		if err != nil {
			return nil, "", err
		}
		if k, _ = c.Seek(after); bytes.Equal(k, after) {
			k, _ = c.Next()
		}
	}
	var keys [][]byte
	for ; k != nil; k, _ = c.Next() {
		name, version, ok := splitSourceKey(k)
		if !ok || !strings.Contains(strings.ToLower(name+"@"+version), text) {
			continue
		}
		if len(keys) == count {
			return keys, encodeCursor(keys[len(keys)-1]), nil
		}
		keys = append(keys, bytes.Clone(k))
	}
	return keys, "", nil
}

// searchDigest returns a page of the keys of the sources with a source
// archive, an output or a published artefact whose SHA-256 starts with the
// hex digits h, and the cursor of the next page.
func searchDigest(tx *bolt.Tx, h string, page scheduler.Page) ([][]byte, string, error) {
	if len(h) < 1 || len(h) > 2*digestLen {
		return nil, "", fmt.Errorf("digest prefix %q: want 1 to 64 hex digits", truncate(h))
	}
	// The whole bytes of the prefix select the index keys; an odd last
	// digit is checked on each.
	whole, err := hex.DecodeString(h[:len(h)/2*2])
	if err != nil {
		return nil, "", fmt.Errorf("digest prefix %q: %v", truncate(h), err)
	}
	matches := func(k []byte) bool {
		return len(k) >= digestLen && strings.HasPrefix(hex.EncodeToString(k[:digestLen]), h)
	}
	found := map[string]bool{}
	err = each(tx.Bucket(bSourcesDigest), whole, func(k, _ []byte) error {
		if matches(k) {
			found[string(k[digestLen:])] = true
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	err = each(tx.Bucket(bVerdictsArtefact), whole, func(k, _ []byte) error {
		if !matches(k) {
			return nil
		}
		if name, version, ok := splitSourceKey(k[digestLen:]); ok {
			found[string(appendText(appendText(nil, name), version))] = true
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	keys := make([][]byte, 0, len(found))
	for k := range found {
		keys = append(keys, []byte(k))
	}
	slices.SortFunc(keys, bytes.Compare)
	if page.Cursor != "" {
		after, err := decodeCursor(page.Cursor, nil)
		if err != nil {
			return nil, "", err
		}
		i, ok := slices.BinarySearchFunc(keys, after, bytes.Compare)
		if ok {
			i++
		}
		keys = keys[i:]
	}
	if count := pageCount(page.Count); len(keys) > count {
		return keys[:count], encodeCursor(keys[count-1]), nil
	}
	return keys, "", nil
}

// splitSourceKey reads the name and version at the start of a key of
// sources, verdicts or verdicts.artefact (after its digest).
func splitSourceKey(k []byte) (name, version string, ok bool) {
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return "", "", false
	}
	j := bytes.IndexByte(k[i+1:], 0)
	if j < 0 {
		return "", "", false
	}
	return string(k[:i]), string(k[i+1 : i+1+j]), true
}
