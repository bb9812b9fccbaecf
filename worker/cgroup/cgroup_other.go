//go:build !linux

package cgroup

import "fmt"

// Group is a cgroup: on Linux only.
type Group struct{}

// New fails: cgroups are Linux's.
func New(name string, l Limits) (*Group, error) {
	return nil, fmt.Errorf("%w: cgroups are Linux's", ErrUnavailable)
}

func (g *Group) Name() string              { return "" }
func (g *Group) Limits() Limits            { return Limits{} }
func (g *Group) Passed() (Passed, error)   { return Passed{}, ErrUnavailable }
func (g *Group) Processes() ([]int, error) { return nil, ErrUnavailable }
func (g *Group) Used() (bool, error)       { return false, ErrUnavailable }
func (g *Group) Close() error              { return nil }
