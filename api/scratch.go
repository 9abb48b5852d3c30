package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/bokeh-go/bokeh-server/storage"
)

// Public viewers write into scratch copies (overlays, §3.8) that anyone may create: one per
// page load of a published document, kept for the overlay TTL. Without bounds one anonymous
// client could fill the server's memory (40 scratch writes of 1 MB were all kept for a day).
// So copies are counted and sized per published document and per viewer (client address;
// for IPv6 its /64), and each viewer's scratch writes are rate-limited. A write beyond a
// bound gets 429 and changes nothing; what was accepted before stays. The accounting is per
// API process and starts empty at start-up; shares are freed when the copy expires.
type ScratchLimits struct {
	DocBytes     int64   // all scratch copies of one document, bytes
	DocCopies    int     // scratch copies of one document
	ViewerBytes  int64   // all scratch copies one viewer keeps, bytes
	ViewerCopies int     // scratch copies one viewer keeps
	WritesPerSec float64 // one viewer's sustained scratch writes
	WriteBurst   int     // and the burst above that
}

// Default scratch-copy bounds: a viewer moving sliders or selecting makes a few writes a
// second of one model each; a copy holds the merged models it changed (a selection copies
// its data source), so the byte bounds are what a few large sources need.
const (
	DefaultScratchDocBytes     = 128 << 20
	DefaultScratchDocCopies    = 1024
	DefaultScratchViewerBytes  = 32 << 20
	DefaultScratchViewerCopies = 256
	DefaultScratchWritesPerSec = 20
	DefaultScratchWriteBurst   = 200
	// scratchSweepEvery is how often expired copies and idle viewers are forgotten.
	scratchSweepEvery = time.Minute
)

func (l ScratchLimits) withDefaults() ScratchLimits {
	if l.DocBytes <= 0 {
		l.DocBytes = DefaultScratchDocBytes
	}
	if l.DocCopies <= 0 {
		l.DocCopies = DefaultScratchDocCopies
	}
	if l.ViewerBytes <= 0 {
		l.ViewerBytes = DefaultScratchViewerBytes
	}
	if l.ViewerCopies <= 0 {
		l.ViewerCopies = DefaultScratchViewerCopies
	}
	if l.WritesPerSec <= 0 {
		l.WritesPerSec = DefaultScratchWritesPerSec
	}
	if l.WriteBurst <= 0 {
		l.WriteBurst = DefaultScratchWriteBurst
	}
	return l
}

type scratchQuotas struct {
	lim ScratchLimits
	ttl time.Duration

	mu      sync.Mutex
	copies  map[scratchKey]*scratchCopy
	docs    map[string]*scratchUsage
	viewers map[string]*scratchViewer
	swept   time.Time
}

type scratchKey struct{ doc, temp string }

type scratchCopy struct {
	viewer string
	models map[storage.ModelKey]int64
	last   time.Time
}

type scratchUsage struct {
	bytes  int64
	copies int
}

type scratchViewer struct {
	scratchUsage
	writes *rate.Limiter
	seen   time.Time
}

func newScratchQuotas(l ScratchLimits, ttl time.Duration) *scratchQuotas {
	return &scratchQuotas{lim: l.withDefaults(), ttl: ttl, copies: map[scratchKey]*scratchCopy{},
		docs: map[string]*scratchUsage{}, viewers: map[string]*scratchViewer{}}
}

// viewerKey names a viewer by address; an IPv6 client owns its whole /64.
func viewerKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.Unmap().String()
}

func modelCost(m storage.Model) int64 { return int64(len(m.Attrs) + len(m.Type) + len(m.ID)) }

// admit accounts a scratch write of models into copy temp of doc by viewer, or refuses it
// with 429: the viewer's write rate first, then the copy's size. undo takes the write back
// out when storing it failed.
func (q *scratchQuotas) admit(doc, temp, viewer string, models []storage.Model, now time.Time) (undo func(), err error) {
	if err := q.writeRate(viewer, now); err != nil {
		return nil, err
	}
	return q.reserve(doc, temp, viewer, models, now)
}

// writeRate takes one of the viewer's scratch writes, or refuses it with 429. Applet writes
// ask it before their callbacks run, and reserve the result's size afterwards.
func (q *scratchQuotas) writeRate(viewer string, now time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.viewer(viewer, now).writes.AllowN(now, 1) {
		return scratchRefusal(fmt.Sprintf("too many scratch-copy writes from this viewer (more than %g a second)", q.lim.WritesPerSec))
	}
	return nil
}

// reserve is admit without the write rate.
func (q *scratchQuotas) reserve(doc, temp, viewer string, models []storage.Model, now time.Time) (undo func(), err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sweep(now)
	v := q.viewer(viewer, now)
	key := scratchKey{doc, temp}
	cp := q.copies[key]
	fresh := cp == nil
	if fresh {
		cp = &scratchCopy{viewer: viewer, models: map[storage.ModelKey]int64{}}
	} else {
		v = q.viewer(cp.viewer, now) // a copy is charged to the viewer who began it
	}
	d := q.docs[doc]
	if d == nil {
		d = &scratchUsage{}
	}
	newSize := make(map[storage.ModelKey]int64, len(models))
	for _, m := range models {
		newSize[m.Key()] = modelCost(m)
	}
	before := make(map[storage.ModelKey]int64, len(newSize)) // 0: not in the copy yet
	var delta int64
	for k, size := range newSize {
		before[k] = cp.models[k]
		delta += size - before[k]
	}
	switch {
	case fresh && d.copies >= q.lim.DocCopies:
		return nil, scratchRefusal(fmt.Sprintf("this document has the most scratch copies allowed (%d)", q.lim.DocCopies))
	case fresh && v.copies >= q.lim.ViewerCopies:
		return nil, scratchRefusal(fmt.Sprintf("this viewer has the most scratch copies allowed (%d)", q.lim.ViewerCopies))
	case delta > 0 && d.bytes+delta > q.lim.DocBytes:
		return nil, scratchRefusal(fmt.Sprintf("the scratch copies of this document would exceed %d bytes", q.lim.DocBytes))
	case delta > 0 && v.bytes+delta > q.lim.ViewerBytes:
		return nil, scratchRefusal(fmt.Sprintf("this viewer's scratch copies would exceed %d bytes", q.lim.ViewerBytes))
	}
	if fresh {
		q.copies[key] = cp
		q.docs[doc] = d
		d.copies++
		v.copies++
	}
	for k, size := range newSize {
		cp.models[k] = size
	}
	d.bytes += delta
	v.bytes += delta
	last := cp.last
	cp.last = now
	return func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		if q.copies[key] != cp {
			return // swept meanwhile
		}
		for k, size := range before {
			if size == 0 {
				delete(cp.models, k)
			} else {
				cp.models[k] = size
			}
		}
		d.bytes -= delta
		v.bytes -= delta
		cp.last = last
		if fresh {
			q.drop(key, cp)
		}
	}, nil
}

// removed frees the share of models deleted from a scratch copy (DELETE, gc).
func (q *scratchQuotas) removed(doc, temp string, keys []storage.ModelKey) {
	q.mu.Lock()
	defer q.mu.Unlock()
	cp := q.copies[scratchKey{doc, temp}]
	if cp == nil {
		return
	}
	for _, k := range keys {
		size := cp.models[k]
		delete(cp.models, k)
		if d := q.docs[doc]; d != nil {
			d.bytes -= size
		}
		if v := q.viewers[cp.viewer]; v != nil {
			v.bytes -= size
		}
	}
}

func (q *scratchQuotas) viewer(name string, now time.Time) *scratchViewer {
	v := q.viewers[name]
	if v == nil {
		v = &scratchViewer{writes: rate.NewLimiter(rate.Limit(q.lim.WritesPerSec), q.lim.WriteBurst)}
		q.viewers[name] = v
	}
	v.seen = now
	return v
}

// drop forgets a copy and its shares; called with mu held.
func (q *scratchQuotas) drop(key scratchKey, cp *scratchCopy) {
	var size int64
	for _, s := range cp.models {
		size += s
	}
	delete(q.copies, key)
	if d := q.docs[key.doc]; d != nil {
		d.bytes -= size
		d.copies--
		if d.copies <= 0 {
			delete(q.docs, key.doc)
		}
	}
	if v := q.viewers[cp.viewer]; v != nil {
		v.bytes -= size
		v.copies--
	}
}

// sweep forgets expired copies and viewers idle for longer than a burst takes to refill;
// called with mu held.
func (q *scratchQuotas) sweep(now time.Time) {
	if now.Sub(q.swept) < scratchSweepEvery {
		return
	}
	q.swept = now
	for key, cp := range q.copies {
		if now.Sub(cp.last) > q.ttl {
			q.drop(key, cp)
		}
	}
	refill := time.Duration(float64(q.lim.WriteBurst) / q.lim.WritesPerSec * float64(time.Second))
	for name, v := range q.viewers {
		if v.copies <= 0 && now.Sub(v.seen) > refill {
			delete(q.viewers, name)
		}
	}
}

// scratchRefusal is the 429 of a scratch write beyond a bound.
func scratchRefusal(why string) error {
	return echo.NewHTTPError(http.StatusTooManyRequests, "scratch copy not changed: "+why+
		"; nothing was stored and earlier changes are kept. Scratch copies expire after their last change; try again later")
}
