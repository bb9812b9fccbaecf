package cgroup

import "errors"

// Root is where the cgroup file systems are mounted.
const Root = "/sys/fs/cgroup"

// ErrUnavailable reports a machine, or a process, where a Group cannot be
// made: no cgroup controllers for memory and processes where this package
// looks for them, or no right to make a cgroup.
var ErrUnavailable = errors.New("cgroups for build caps unavailable")

// Limits are a group's caps; a zero field is no cap.
type Limits struct {
	// Memory caps the bytes of memory the group's processes use, their
	// tmpfs files and page cache included.
	Memory int64
	// Processes caps how many processes and threads the group holds.
	Processes int64
}

// Passed says which caps a group's processes have passed.
type Passed struct {
	Memory, Processes bool
}
