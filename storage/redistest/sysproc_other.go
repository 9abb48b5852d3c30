//go:build !linux

package redistest

import "syscall"

// sysProcAttr: only Linux can tie the child's life to ours; elsewhere cleanups must do.
func sysProcAttr() *syscall.SysProcAttr { return nil }
