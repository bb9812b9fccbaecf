//go:build !linux

package worker

import "io/fs"

// stepDir finds no step: caps are Linux's (see CheckCaps).
func (w *watch) stepDir() (string, bool) { return "", false }

func allocated(fs.FileInfo) int64 { return 0 }
