//go:build !(linux && cgo)

package proctune

// Malloc does nothing where the C allocator is not glibc's.
func Malloc() {}
