// Package capped is a buffer that keeps the first bytes written to it, up
// to a limit, and says where it cut: for build logs and reports, whose
// writers go on whatever the reader can keep.
package capped

import (
	"bytes"
	"fmt"
)

// Buffer keeps the first Max bytes written to it; every Write succeeds.
type Buffer struct {
	Max int64
	buf bytes.Buffer
	cut bool
}

func (c *Buffer) Write(p []byte) (int, error) {
	if room := c.Max - int64(c.buf.Len()); room < int64(len(p)) {
		if room > 0 {
			c.buf.Write(p[:room])
		}
		c.cut = true
		return len(p), nil
	}
	return c.buf.Write(p)
}

// Kept returns the bytes kept.
func (c *Buffer) Kept() []byte { return c.buf.Bytes() }

// Bytes returns the bytes kept and, if some were cut, a last line saying
// so: "[lantern: WHAT cut at MAX bytes]".
func (c *Buffer) Bytes(what string) []byte {
	if !c.cut {
		return c.buf.Bytes()
	}
	return fmt.Appendf(bytes.Clone(c.buf.Bytes()), "\n[lantern: %s cut at %d bytes]\n", what, c.Max)
}
