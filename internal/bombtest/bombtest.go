// Package bombtest makes decompression bombs for tests of what unpacks a
// builder's outputs: small files that unpack to gigabytes of zeros. They
// are made in a moment, from one compressed block repeated.
package bombtest

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"fmt"
	"hash/crc32"
)

// Chunk is how many zeros one compressed block unpacks to.
const Chunk = 64 << 20

// Gzip returns a gzip file of n members, each Chunk zeros: gzip -d
// unpacks it to n×Chunk bytes.
func Gzip(n int) []byte {
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zw.Write(make([]byte, Chunk))
	zw.Close()
	return bytes.Repeat(member.Bytes(), n)
}

// Zip returns a zip archive of n members, each Chunk zeros, deflated.
func Zip(n int) []byte {
	var raw bytes.Buffer
	fw, _ := flate.NewWriter(&raw, flate.BestCompression)
	fw.Write(make([]byte, Chunk))
	fw.Close()
	crc := crc32.ChecksumIEEE(make([]byte, Chunk))
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for i := range n {
		w, err := zw.CreateRaw(&zip.FileHeader{
			Name: fmt.Sprintf("zeros-%d.bin", i), Method: zip.Deflate,
			CRC32: crc, CompressedSize64: uint64(raw.Len()), UncompressedSize64: Chunk,
		})
		if err != nil {
			panic(err)
		}
		w.Write(raw.Bytes())
	}
	zw.Close()
	return out.Bytes()
}
