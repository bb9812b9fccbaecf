// Package cgroup makes the Linux control group that a build step runs
// below, with caps on its memory and on its number of processes, and says
// when the step passes one. The worker makes one Group per build, hands its
// name to BuildKit (llb.WithCgroupParent: runc then puts the step's
// container in NAME/buildkit/ID), watches it while the build runs and
// removes it after.
//
// # Why a cgroup of the worker's own
//
// BuildKit (v0.34) can cap an ExecOp's memory (llb.MemoryLimit, in the
// step's own cgroup, which runc removes as the step ends) and its rlimits
// (llb.AddUlimit), but not its number of processes, and RLIMIT_NPROC does
// not bind uid 0, which a generic build runs as. A group the worker makes
// holds both caps (memory with the step's tmpfs pages, which the kernel
// charges to it; processes and threads), outlives the step so that the
// worker can read what happened, and is a place to find the step's
// processes — through which the worker sees the step's output directory
// (see worker's caps.go).
//
// # What it needs
//
// Root on the machine of the buildkitd, which must run there too (runc
// creates the step's cgroup below the group, by path): the daemon that
// 'lantern worker' starts does. Either cgroup v1 with the memory and pids
// controllers mounted under /sys/fs/cgroup (Debian with systemd's hybrid
// layout; what Lantern is tested on), or cgroup v2 mounted at
// /sys/fs/cgroup (the unified layout of current distributions).
//
// # Knowing that a cap was passed
//
// Memory: on v1 an OOM event in the group is counted in the group where the
// victim lived — the step's own cgroup, gone as soon as the step ends — so
// the group registers an eventfd for OOM notifications on itself
// (cgroup.event_control): the kernel signals it whenever the group is at
// its cap and the OOM killer runs, also when the victim is a tmpfs write.
// On v2 the group's memory.events counts oom and oom_kill of its whole
// subtree, and memory.oom.group has the OOM killer take every process of
// the build at once.
//
// Processes: a fork past pids.max fails with EAGAIN; the kernel counts it in
// the pids.events of the cgroup that forked (the step's, on v1) and not in
// the group's. The group is therefore past its cap when it holds pids.max
// tasks (a fork bomb sits there) or when a cgroup below it counted a failed
// fork.
package cgroup
