//go:build linux && cgo

// Package proctune holds the process-wide tuning bokeh-server and ws-worker apply at start
// (each behind a flag): the C allocator's thresholds and ZeroMQ's I/O thread slices.
package proctune

// libzmq copies every message through malloc: a 60 KB modelpush is allocated and freed by
// the publisher's and the subscriber's ZeroMQ threads for every update. glibc's default
// trims the heap as soon as 128 KiB at its top are free, so each message faulted its pages
// back in, on each side. The process keeps freed memory up to trimThreshold instead, and
// messages up to
// mmapThreshold come from the heap rather than from a mapping of their own.

/*
#include <malloc.h>

static void bokehTuneMalloc(int mmapThreshold, int trimThreshold) {
#if defined(M_TRIM_THRESHOLD) && defined(M_MMAP_THRESHOLD)
	mallopt(M_MMAP_THRESHOLD, mmapThreshold);
	mallopt(M_TRIM_THRESHOLD, trimThreshold);
#endif
}
*/
import "C"

const (
	mmapThreshold = 4 << 20
	trimThreshold = 32 << 20
)

// Malloc sets glibc's mmap and trim thresholds for the whole process.
func Malloc() { C.bokehTuneMalloc(mmapThreshold, trimThreshold) }
