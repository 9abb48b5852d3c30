package wshub

// subscribers is one topic's clients. dispatch iterates the slice it read under the hub's
// read lock without holding it, so the slice is never changed below the length a reader
// may have taken: a subscribe appends, and an unregister only marks its client gone and
// counts it. Once the gone are half of the slice, it is rebuilt without them into a new
// array. When every viewer of a popular document leaves at once (a worker's 16,000 in the
// scale benchmark), that costs O(n) copies in all instead of a copy of the rest per leaver
// (O(n²): seconds of CPU and gigabytes of garbage, during which subscribes waited).
type subscribers struct {
	all  []*client
	gone int // clients of all that have been unregistered
}

// live is how many clients still watch the topic.
func (s *subscribers) live() int { return len(s.all) - s.gone }

func (s *subscribers) add(c *client) { s.all = append(s.all, c) }

// drop counts an unregistered client (already marked gone).
func (s *subscribers) drop() {
	s.gone++
	if s.gone*2 < len(s.all) {
		return
	}
	rest := make([]*client, 0, len(s.all)-s.gone)
	for _, c := range s.all {
		if !c.gone.Load() {
			rest = append(rest, c)
		}
	}
	s.all, s.gone = rest, 0
}
