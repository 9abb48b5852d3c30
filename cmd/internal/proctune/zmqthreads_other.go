//go:build !linux

package proctune

import (
	"log/slog"
	"time"
)

// DefaultZMQThreadSlice is the slice asked for where the kernel has custom slices (Linux).
const DefaultZMQThreadSlice = 100 * time.Microsecond

// ZMQThreads does nothing outside Linux.
func ZMQThreads(time.Duration, *slog.Logger) {}
