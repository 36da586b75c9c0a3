// Package rlimit raises the open-files limit of the benchmark's processes:
// this machine allows 20,000 descriptors per process, but starts each with a
// lower soft limit.
package rlimit

import (
	"fmt"
	"syscall"
)

// RaiseNofile lifts the soft open-files limit to the hard one. Child
// processes inherit it.
func RaiseNofile() error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("reading open-files limit: %w", err)
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("raising open-files limit: %w", err)
	}
	return nil
}
