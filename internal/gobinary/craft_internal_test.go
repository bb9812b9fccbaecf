package gobinary

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"runtime/debug"
	"testing"
)

// craftELF returns the smallest ELF file debug/buildinfo reads as a Go
// binary with build information goVersion and info: one writable PT_LOAD
// segment holding the build information blob as the linker lays it out
// (cmd/link's buildinfo: the magic, pointer size, flags with inline
// strings, then the version and the module information as
// length-prefixed strings, the latter between its 16-byte sentinels).
func craftELF(goVersion string, info *debug.BuildInfo) []byte {
	var blob bytes.Buffer
	blob.WriteString("\xff Go buildinf:")
	blob.WriteByte(8)   // pointer size
	blob.WriteByte(0x2) // flags: inline strings, little-endian
	blob.Write(make([]byte, 32-blob.Len()))
	putString := func(s string) {
		blob.Write(binary.AppendUvarint(nil, uint64(len(s))))
		blob.WriteString(s)
	}
	putString(goVersion)
	mod := ""
	if info != nil {
		mod = "0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6" + info.String() + "\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2"
	}
	putString(mod)

	const (
		ehsize  = 64
		phsize  = 56
		dataOff = 128 // 16-aligned, as debug/buildinfo looks for the magic
		vaddr   = 0x400000 + dataOff
	)
	var f bytes.Buffer
	le := binary.LittleEndian
	ident := [16]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)}
	f.Write(ident[:])
	binary.Write(&f, le, uint16(elf.ET_EXEC))
	binary.Write(&f, le, uint16(elf.EM_X86_64))
	binary.Write(&f, le, uint32(elf.EV_CURRENT))
	binary.Write(&f, le, uint64(vaddr))  // entry
	binary.Write(&f, le, uint64(ehsize)) // phoff
	binary.Write(&f, le, uint64(0))      // shoff: no sections
	binary.Write(&f, le, uint32(0))      // flags
	binary.Write(&f, le, uint16(ehsize))
	binary.Write(&f, le, uint16(phsize))
	binary.Write(&f, le, uint16(1)) // phnum
	binary.Write(&f, le, uint16(64))
	binary.Write(&f, le, uint16(0)) // shnum
	binary.Write(&f, le, uint16(0)) // shstrndx
	// The one program header: a writable, not executable, data segment.
	binary.Write(&f, le, uint32(elf.PT_LOAD))
	binary.Write(&f, le, uint32(elf.PF_R|elf.PF_W))
	binary.Write(&f, le, uint64(dataOff))
	binary.Write(&f, le, uint64(vaddr))
	binary.Write(&f, le, uint64(vaddr))
	binary.Write(&f, le, uint64(blob.Len()))
	binary.Write(&f, le, uint64(blob.Len()))
	binary.Write(&f, le, uint64(16))
	f.Write(make([]byte, dataOff-f.Len()))
	f.Write(blob.Bytes())
	return f.Bytes()
}

// installed is the build information of a plain go install of a module
// version: `GOTOOLCHAIN=go1.23.4 GOFLAGS=-trimpath CGO_ENABLED=0 go install
// golang.org/x/tools/cmd/stringer@v0.30.0`, as go version -m prints it.
func installed(t testing.TB) *debug.BuildInfo {
	t.Helper()
	info, err := debug.ParseBuildInfo(`path	golang.org/x/tools/cmd/stringer
mod	golang.org/x/tools	v0.30.0	h1:BgcpHewrV5AUp2G9MebG4XPFI1E2W41zU1SaqVA9vJY=
dep	golang.org/x/mod	v0.23.0	h1:Zb7khfcRGKk+kqfxFaP5tZqCnDZMjC5VtUBs87Hr6QM=
dep	golang.org/x/sync	v0.11.0	h1:GGz8+XQP4FvTTrjZPzNKTMFtSXH80RAzG+5ghFPgK9w=
build	-buildmode=exe
build	-compiler=gc
build	-trimpath=true
build	DefaultGODEBUG=asynctimerchan=1,gotypesalias=1,httpservecontentkeepheaders=1,tls3des=1,tlskyber=0,x509keypairleaf=0,x509negativeserial=1
build	CGO_ENABLED=0
build	GOARCH=amd64
build	GOOS=linux
build	GOAMD64=v1
`)
	if err != nil {
		t.Fatal(err)
	}
	info.GoVersion = "go1.23.4"
	return info
}
