// Package ratelog keeps recurring problems (a broken publisher, an unreachable API) from
// flooding the log: each kind of problem is logged at most once per interval.
package ratelog

import (
	"sync/atomic"
	"time"
)

// Limiter admits one event per interval and counts the ones it suppressed in between. The
// zero value is ready; it is safe for concurrent use.
type Limiter struct {
	last       atomic.Int64
	suppressed atomic.Int64
}

// Allow reports whether to log now, and how many events were suppressed since the last
// time it said yes.
func (l *Limiter) Allow(interval time.Duration) (ok bool, suppressed int64) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(interval) || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
