package natsq

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/lanternfarm/lantern"
	"github.com/lanternfarm/lantern/scheduler"
)

func bytesReader(s string) io.Reader { return strings.NewReader(s) }

func readObject(t *testing.T, q *Queue, d lantern.Digest) string {
	t.Helper()
	rc, err := q.GetObject(testCtx(t), d)
	if err != nil {
		t.Fatalf("GetObject(%s) = %v", d.Short(), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading object %s: %v", d.Short(), err)
	}
	return string(b)
}

func TestObjects(t *testing.T) {
	s := startServer(t, "", -1)
	q := connect(t, s.URL(), Config{})
	big := make([]byte, spoolInMemory+300<<10) // spills to a temporary file
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"log", []byte("step 1\nstep 2\n")},
		{"artefact", big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			d, err := q.PutObject(ctx, tc.name, bytes.NewReader(tc.data))
			if err != nil {
				t.Fatalf("PutObject() = %v", err)
			}
			if want := lantern.DigestOf(tc.data); d != want {
				t.Errorf("PutObject() = %s, want %s", d, want)
			}
			if got := readObject(t, q, d); got != string(tc.data) {
				t.Errorf("GetObject() read %d bytes, want the %d put", len(got), len(tc.data))
			}
			again, err := q.PutObject(ctx, "again", bytes.NewReader(tc.data))
			if err != nil || again != d {
				t.Errorf("PutObject(same bytes) = %s, %v; want %s, nil", again, err, d)
			}
			info, err := q.objects.GetInfo(ctx, d.String())
			if err != nil {
				t.Fatalf("GetInfo() = %v", err)
			}
			if info.Description != tc.name || info.Size != uint64(len(tc.data)) {
				t.Errorf("object info: description %q, size %d; want %q, %d", info.Description, info.Size, tc.name, len(tc.data))
			}
		})
	}
	if _, err := q.GetObject(testCtx(t), lantern.DigestOf([]byte("never stored"))); !errors.Is(err, ErrObjectNotFound) || !errors.Is(err, scheduler.ErrNoObject) {
		t.Errorf("GetObject(missing) = %v, want ErrObjectNotFound and scheduler.ErrNoObject", err)
	}
}
