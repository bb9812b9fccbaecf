package lantern_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/lanternfarm/lantern"
)

// benchData is the 64 MiB that BenchmarkDigestReader and BenchmarkSHA256Stdlib
// both hash, so that their MB/s compare Digest with the bare standard library.
func benchData(b *testing.B) []byte {
	b.Helper()
	data := make([]byte, 64<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	return data
}

func BenchmarkDigestReader(b *testing.B) {
	data := benchData(b)
	want := lantern.DigestFromSum(sha256.Sum256(data))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		d, n, err := lantern.DigestReader(bytes.NewReader(data))
		if err != nil || n != int64(len(data)) || d != want {
			b.Fatalf("DigestReader() = %v, %d, %v, want %v, %d, nil", d, n, err, want, len(data))
		}
	}
}

func BenchmarkSHA256Stdlib(b *testing.B) {
	data := benchData(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.New()
		if _, err := io.Copy(h, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		h.Sum(nil)
	}
}
