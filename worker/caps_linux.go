package worker

import (
	"io/fs"
	"path/filepath"
	"strconv"
	"syscall"
)

// stepDir returns the output directory as the host sees it through a
// process of the step: /proc/PID/root/OUT. A process that has not yet
// entered the step's root (runc's, setting it up) is passed over: its
// root is the host's.
func (w *watch) stepDir() (string, bool) {
	pids, err := w.g.Processes()
	if err != nil {
		return "", false
	}
	var host syscall.Stat_t
	if err := syscall.Stat("/", &host); err != nil {
		return "", false
	}
	for _, pid := range pids {
		root := filepath.Join("/proc", strconv.Itoa(pid), "root")
		var st syscall.Stat_t
		if err := syscall.Stat(root, &st); err != nil || (st.Dev == host.Dev && st.Ino == host.Ino) {
			continue
		}
		return filepath.Join(root, filepath.FromSlash(w.out)), true
	}
	return "", false
}

// allocated returns the bytes of disk fi's file takes.
func allocated(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return 0
}
