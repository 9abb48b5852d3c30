package cluster

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// An ordering and no-loss validator for live updates, in the spirit of etcd's watch
// validators: writers record every write the API acknowledged, clients record every frame
// they were sent, and Check compares the two per stream.
//
// A stream is one model on one topic whose every write carries a number in its "seq"
// attribute, increasing with each write (one writer per stream, so publish order is seq
// order). For every client and stream Check requires:
//   - the pushes received (over all of the client's connections) are strictly increasing:
//     nothing reordered, nothing delivered twice;
//   - every seq received was acknowledged to the writer (nothing invented, nothing from a
//     refused write);
//   - within one connection, the seqs received are consecutive acknowledged writes: once a
//     subscription is confirmed, nothing is lost; after a reload over HTTP, the first push
//     follows the reloaded state without a gap;
//   - a client subscribed before the first write and never disconnected received every
//     acknowledged write;
//   - the client's final state (the last push or reload applied) equals storage, and
//     storage equals the last acknowledged write.

// Stream names a sequence of writes: the model ID pushed on Topic.
type Stream struct {
	Topic string // e.g. bokehplot:<docid>
	ID    string // the model's id
}

func (s Stream) String() string { return s.Topic + "/" + s.ID }

// Validator holds the acknowledged writes and the clients' logs.
type Validator struct {
	mu      sync.Mutex
	acked   map[Stream][]int64
	sent    map[Stream]map[int64]time.Time
	clients []*ClientLog
}

// NewValidator returns an empty validator.
func NewValidator() *Validator {
	return &Validator{acked: map[Stream][]int64{}, sent: map[Stream]map[int64]time.Time{}}
}

// Sending records when the write of seq started (for delivery latencies).
func (v *Validator) Sending(s Stream, seq int64, at time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := v.sent[s]
	if m == nil {
		m = map[int64]time.Time{}
		v.sent[s] = m
	}
	m[seq] = at
}

// Acked records that the API acknowledged the write of seq (200). Call it in write order.
func (v *Validator) Acked(s Stream, seq int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.acked[s] = append(v.acked[s], seq)
}

// AckedSeqs returns the acknowledged seqs of s, in order.
func (v *Validator) AckedSeqs(s Stream) []int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.acked[s])
}

// Streams returns every stream with an acknowledged write.
func (v *Validator) Streams() []Stream {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []Stream
	for s := range v.acked {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// NewClient registers a client log. throughout means the client will be subscribed before
// the first write and never disconnect, so it must receive every acknowledged write.
func (v *Validator) NewClient(name string, throughout bool) *ClientLog {
	l := &ClientLog{Name: name, Throughout: throughout, topics: map[string]bool{}}
	v.mu.Lock()
	v.clients = append(v.clients, l)
	v.mu.Unlock()
	return l
}

// Clients returns the registered client logs.
func (v *Validator) Clients() []*ClientLog {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.clients)
}

// event is one thing that happened to a client, in the order it happened.
type event struct {
	kind   byte // 'c' new connection, 'p' push received, 'r' state reloaded over HTTP, 'x' closed (seq: the close code)
	stream Stream
	seq    int64
	at     time.Time
}

// ClientLog records what one client was sent and applied.
type ClientLog struct {
	Name       string
	Throughout bool

	mu       sync.Mutex
	events   []event
	topics   map[string]bool
	frames   int
	problems []string
}

// Subscribed records that the client subscribed to topic (pushes on other topics are
// errors).
func (l *ClientLog) Subscribed(topic string) {
	l.mu.Lock()
	l.topics[topic] = true
	l.mu.Unlock()
}

// Connected marks the start of a new connection; pushes are contiguous only within one.
func (l *ClientLog) Connected() {
	l.mu.Lock()
	l.events = append(l.events, event{kind: 'c', at: time.Now()})
	l.mu.Unlock()
}

// Closed records that the connection ended with a websocket close code (1006 when it broke
// without one). A connection the worker closes for a resync ends with 4001: that is how a
// client is told it may have missed writes.
func (l *ClientLog) Closed(code int) {
	l.mu.Lock()
	l.events = append(l.events, event{kind: 'x', seq: int64(code), at: time.Now()})
	l.mu.Unlock()
}

// pushFrame is the part of a modelpush the validator reads.
type pushFrame struct {
	Msgtype    string `json:"msgtype"`
	Modelspecs []struct {
		ID         string `json:"id"`
		Attributes struct {
			Seq *int64 `json:"seq"`
		} `json:"attributes"`
	} `json:"modelspecs"`
}

// Frame records one websocket frame "topic:payload" as received now. Status and error
// frames are counted but not validated; modelpushes yield one push per model carrying seq.
func (l *ClientLog) Frame(frame string) {
	l.FrameAt(frame, time.Now())
}

// FrameAt is Frame with the arrival time given.
func (l *ClientLog) FrameAt(frame string, at time.Time) {
	topic, payload, ok := SplitFrame(frame)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.frames++
	if !ok {
		l.problems = append(l.problems, fmt.Sprintf("frame without topic: %.80q", frame))
		return
	}
	if !strings.Contains(payload[:min(len(payload), 40)], "modelpush") {
		return // status, error or another kind
	}
	if !l.topics[topic] {
		l.problems = append(l.problems, fmt.Sprintf("push on %s, which the client never subscribed to", topic))
	}
	seqs, err := pushSeqs(payload)
	if err != nil {
		l.problems = append(l.problems, fmt.Sprintf("modelpush on %s: %v", topic, err))
		return
	}
	for _, m := range seqs {
		l.events = append(l.events, event{kind: 'p', stream: Stream{topic, m.id}, seq: m.seq, at: at})
	}
}

type idSeq struct {
	id  string
	seq int64
}

// pushSeqs returns the id and seq of every model of a modelpush payload that has a seq.
// Clients in tests run under the race detector, where encoding/json takes ~2 ms for a
// 14 KB frame and readers would fall behind; the quick walker below reads only what is
// needed and falls back to encoding/json for anything it does not expect.
func pushSeqs(payload string) ([]idSeq, error) {
	if out, ok := quickSeqs(payload); ok {
		return out, nil
	}
	var p pushFrame
	if err := json.Unmarshal([]byte(payload), &p); err != nil {
		return nil, fmt.Errorf("not JSON (%v)", err)
	}
	var out []idSeq
	for _, m := range p.Modelspecs {
		if m.Attributes.Seq != nil {
			out = append(out, idSeq{m.ID, *m.Attributes.Seq})
		}
	}
	return out, nil
}

// quickSeqs walks {"msgtype": ..., "modelspecs": [{"id": ..., "attributes": {"seq": N,
// ...}}, ...]} skipping every other value; ok is false for anything unexpected.
func quickSeqs(s string) (out []idSeq, ok bool) {
	w := walker{s: s}
	ok = w.object(func(key string) bool {
		if key != "modelspecs" {
			return w.skip()
		}
		return w.array(func() bool {
			var m idSeq
			var hasSeq bool
			ok := w.object(func(key string) bool {
				switch key {
				case "id":
					id, ok := w.str()
					m.id = id
					return ok
				case "attributes":
					return w.object(func(key string) bool {
						if key != "seq" {
							return w.skip()
						}
						n, ok := w.int()
						m.seq, hasSeq = n, ok
						return ok
					})
				}
				return w.skip()
			})
			if ok && hasSeq {
				out = append(out, m)
			}
			return ok
		})
	})
	w.space()
	return out, ok && w.i == len(s)
}

// walker is a minimal JSON reader for quickSeqs.
type walker struct {
	s string
	i int
}

func (w *walker) space() {
	for w.i < len(w.s) && (w.s[w.i] == ' ' || w.s[w.i] == '\n' || w.s[w.i] == '\t' || w.s[w.i] == '\r') {
		w.i++
	}
}

func (w *walker) eat(c byte) bool {
	w.space()
	if w.i < len(w.s) && w.s[w.i] == c {
		w.i++
		return true
	}
	return false
}

// object calls member for each key, positioned at its value.
func (w *walker) object(member func(key string) bool) bool {
	if !w.eat('{') {
		return false
	}
	if w.eat('}') {
		return true
	}
	for {
		key, ok := w.str()
		if !ok || !w.eat(':') || !member(key) {
			return false
		}
		if w.eat('}') {
			return true
		}
		if !w.eat(',') {
			return false
		}
	}
}

func (w *walker) array(elem func() bool) bool {
	if !w.eat('[') {
		return false
	}
	if w.eat(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if w.eat(']') {
			return true
		}
		if !w.eat(',') {
			return false
		}
	}
}

// str reads a string without escapes (ids and keys); others make the walk give up.
func (w *walker) str() (string, bool) {
	if !w.eat('"') {
		return "", false
	}
	j := strings.IndexByte(w.s[w.i:], '"')
	if j < 0 || strings.IndexByte(w.s[w.i:w.i+j], '\\') >= 0 {
		return "", false
	}
	v := w.s[w.i : w.i+j]
	w.i += j + 1
	return v, true
}

func (w *walker) int() (int64, bool) {
	w.space()
	j := w.i
	for j < len(w.s) && (w.s[j] == '-' || w.s[j] >= '0' && w.s[j] <= '9') {
		j++
	}
	n, err := strconv.ParseInt(w.s[w.i:j], 10, 64)
	w.i = j
	return n, err == nil
}

// skip passes over one value of any kind, trusting its nesting (the fallback parser
// validates when anything does not add up). Arrays of plain scalars, the bulk of a data
// source, are skipped with IndexByte, which is fast even under the race detector.
func (w *walker) skip() bool {
	w.space()
	s, i := w.s, w.i
	depth := 0
	for i < len(s) {
		switch s[i] {
		case '"':
			// The closing quote is one not preceded by an odd number of backslashes.
			j := i + 1
			for {
				k := strings.IndexByte(s[j:], '"')
				if k < 0 {
					return false
				}
				j += k
				b := 0
				for j-1-b > i && s[j-1-b] == '\\' {
					b++
				}
				if b%2 == 0 {
					break
				}
				j++
			}
			i = j + 1
		case '[':
			if k := strings.IndexByte(s[i:], ']'); k > 0 {
				inner := s[i+1 : i+k]
				if strings.IndexByte(inner, '[') < 0 && strings.IndexByte(inner, '{') < 0 && strings.IndexByte(inner, '"') < 0 {
					i += k + 1
					break
				}
			}
			depth++
			i++
		case '{':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				w.i = i
				return true // the end of the enclosing value
			}
			depth--
			i++
		case ',':
			if depth == 0 {
				w.i = i
				return true
			}
			i++
		default:
			i++
		}
		if depth == 0 && (s[i-1] == '"' || s[i-1] == '}' || s[i-1] == ']') {
			w.i = i
			return true
		}
	}
	w.i = i
	return depth == 0
}

// Reloaded records that the client loaded the stream's state over HTTP and applied it.
func (l *ClientLog) Reloaded(s Stream, seq int64) {
	l.mu.Lock()
	l.events = append(l.events, event{kind: 'r', stream: s, seq: seq, at: time.Now()})
	l.mu.Unlock()
}

// SplitFrame splits "kind:value:payload" after the second colon, as BokehJS does.
func SplitFrame(frame string) (topic, payload string, ok bool) {
	i := strings.IndexByte(frame, ':')
	if i < 0 {
		return "", "", false
	}
	j := strings.IndexByte(frame[i+1:], ':')
	if j < 0 {
		return "", "", false
	}
	return frame[:i+1+j], frame[i+2+j:], true
}

// Frames is how many frames the client received.
func (l *ClientLog) Frames() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.frames
}

// Pushes returns the seqs received for s, in arrival order.
func (l *ClientLog) Pushes(s Stream) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int64
	for _, e := range l.events {
		if e.kind == 'p' && e.stream == s {
			out = append(out, e.seq)
		}
	}
	return out
}

// PushCount is how many pushes with a seq the client received, over all streams.
func (l *ClientLog) PushCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.kind == 'p' {
			n++
		}
	}
	return n
}

// State is the client's current seq of s: the last push or reload applied.
func (l *ClientLog) State(s Stream) (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.events) - 1; i >= 0; i-- {
		if e := l.events[i]; e.kind != 'c' && e.stream == s {
			return e.seq, true
		}
	}
	return 0, false
}

// Connections is how many connections the client made (Connected calls).
func (l *ClientLog) Connections() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.kind == 'c' {
			n++
		}
	}
	return n
}

// WaitCaughtUp waits (bounded by timeout) until every client watching a stream's topic
// has the stream's last acknowledged seq as its state. It reports whether they all did.
func (v *Validator) WaitCaughtUp(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if v.behind() == "" {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// behind names a client that does not have the last acknowledged state yet, or "".
func (v *Validator) behind() string {
	streams := v.Streams()
	for _, l := range v.Clients() {
		for _, s := range streams {
			if !l.watches(s.Topic) {
				continue
			}
			acked := v.AckedSeqs(s)
			if got, _ := l.State(s); got != acked[len(acked)-1] {
				return fmt.Sprintf("%s at %s=%d, want %d", l.Name, s, got, acked[len(acked)-1])
			}
		}
	}
	return ""
}

func (l *ClientLog) watches(topic string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.topics[topic]
}

// Summary is what Check found.
type Summary struct {
	Clients, Streams int
	Pushes           int         // pushes validated over all clients
	Reloads          int         // HTTP reloads applied
	Connections      int         // connections over all clients (reconnects = Connections - clients)
	Closes           map[int]int // connections that ended, by close code
	Problems         []string
}

func (s Summary) String() string {
	return fmt.Sprintf("%d clients, %d streams, %d pushes, %d connections (closes by code %v), %d reloads, %d problems",
		s.Clients, s.Streams, s.Pushes, s.Connections, s.Closes, s.Reloads, len(s.Problems))
}

// maxReported bounds the problems listed in a failure message.
const maxReported = 20

// Check validates every client against the acknowledged writes; stored maps each stream
// to the seq storage holds now (nil skips the storage comparison). Problems fail the test.
func (v *Validator) Check(tb testing.TB, stored map[Stream]int64) Summary {
	tb.Helper()
	sum := v.Validate(stored)
	if n := len(sum.Problems); n > 0 {
		shown := sum.Problems[:min(n, maxReported)]
		tb.Errorf("validator: %d problems (%s):\n  %s", n, sum, strings.Join(shown, "\n  "))
	}
	return sum
}

// Validate is Check without failing the test.
func (v *Validator) Validate(stored map[Stream]int64) Summary {
	streams := v.Streams()
	clients := v.Clients()
	sum := Summary{Clients: len(clients), Streams: len(streams), Closes: map[int]int{}}
	problem := func(format string, args ...any) { sum.Problems = append(sum.Problems, fmt.Sprintf(format, args...)) }

	index := map[Stream]map[int64]int{} // stream -> seq -> position among acked writes
	for _, s := range streams {
		acked := v.AckedSeqs(s)
		pos := map[int64]int{}
		for i, seq := range acked {
			if i > 0 && seq <= acked[i-1] {
				problem("%s: writer acknowledged seq %d after %d (test bug: seqs must increase)", s, seq, acked[i-1])
			}
			pos[seq] = i
		}
		index[s] = pos
		if stored != nil {
			if got, ok := stored[s]; !ok || got != acked[len(acked)-1] {
				problem("%s: storage holds seq %d, the last acknowledged write is %d", s, got, acked[len(acked)-1])
			}
		}
	}

	for _, l := range clients {
		l.mu.Lock()
		events := slices.Clone(l.events)
		problems := slices.Clone(l.problems)
		l.mu.Unlock()
		for _, p := range problems {
			problem("%s: %s", l.Name, p)
		}
		for _, e := range events {
			switch e.kind {
			case 'c':
				sum.Connections++
			case 'r':
				sum.Reloads++
			case 'x':
				sum.Closes[int(e.seq)]++
			}
		}
		for _, s := range streams {
			if !l.watches(s.Topic) {
				for _, e := range events {
					if e.kind == 'p' && e.stream.Topic == s.Topic {
						problem("%s: received %s seq %d without watching the topic", l.Name, s, e.seq)
						break
					}
				}
				continue
			}
			acked := v.AckedSeqs(s)
			pos := index[s]
			var all []int64
			last := int64(-1 << 62)
			prevPos := -2   // position of the previous push in this connection; -2: none yet
			reloadPos := -2 // position of the state reloaded in this connection; -1: before any write
			for _, e := range events {
				if e.kind == 'c' {
					prevPos, reloadPos = -2, -2
					continue
				}
				if e.kind == 'r' && e.stream == s {
					if p, ok := pos[e.seq]; ok {
						reloadPos = p
					} else if e.seq < acked[0] {
						reloadPos = -1
					} else {
						problem("%s: %s reloaded seq %d, which was never acknowledged to the writer", l.Name, s, e.seq)
					}
					continue
				}
				if e.kind != 'p' || e.stream != s {
					continue
				}
				sum.Pushes++
				all = append(all, e.seq)
				switch {
				case e.seq == last:
					problem("%s: %s seq %d delivered twice", l.Name, s, e.seq)
				case e.seq < last:
					problem("%s: %s seq %d after %d (reordered)", l.Name, s, e.seq, last)
				}
				last = max(last, e.seq)
				p, ok := pos[e.seq]
				if !ok {
					problem("%s: %s seq %d was never acknowledged to the writer", l.Name, s, e.seq)
					prevPos = -2
					continue
				}
				if prevPos != -2 && p > prevPos+1 {
					problem("%s: %s lost %d write(s) between seq %d and %d on one connection", l.Name, s, p-prevPos-1, acked[prevPos], e.seq)
				}
				if prevPos == -2 && reloadPos != -2 && p > reloadPos+1 {
					// Neither the reload nor the pushes of this connection had these writes:
					// the client showed a stale state until the next push.
					problem("%s: %s missed %d write(s) between its reload (seq %s) and the first push of the connection (seq %d)",
						l.Name, s, p-reloadPos-1, seqAt(acked, reloadPos), e.seq)
				}
				prevPos = p
			}
			if l.Throughout && !slices.Equal(all, acked) {
				problem("%s: %s subscribed throughout but received %d of %d writes (%s)", l.Name, s, len(all), len(acked), firstDifference(all, acked))
			}
			state, ok := l.State(s)
			if !ok || state != acked[len(acked)-1] {
				problem("%s: %s final state seq %d, the last acknowledged write is %d", l.Name, s, state, acked[len(acked)-1])
			}
		}
	}
	return sum
}

// seqAt names the acknowledged write at position p (-1: the state before the first).
func seqAt(acked []int64, p int) string {
	if p < 0 {
		return "before the first write"
	}
	return strconv.FormatInt(acked[p], 10)
}

func firstDifference(got, want []int64) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at #%d: got %d, want %d", i, got[i], want[i])
		}
	}
	if len(got) < len(want) {
		return fmt.Sprintf("missing from seq %d on", want[len(got)])
	}
	if len(got) > len(want) {
		return fmt.Sprintf("extra from seq %d on", got[len(want)])
	}
	return "same"
}

// Latencies returns, for every push received by the given clients, the time from the start
// of its write (Sending) to its arrival.
func (v *Validator) Latencies(clients []*ClientLog) []time.Duration {
	v.mu.Lock()
	sent := map[Stream]map[int64]time.Time{}
	for s, m := range v.sent {
		sent[s] = m
	}
	v.mu.Unlock()
	var out []time.Duration
	for _, l := range clients {
		l.mu.Lock()
		for _, e := range l.events {
			if e.kind != 'p' {
				continue
			}
			v.mu.Lock()
			t0, ok := sent[e.stream][e.seq]
			v.mu.Unlock()
			if ok {
				out = append(out, e.at.Sub(t0))
			}
		}
		l.mu.Unlock()
	}
	return out
}

// Percentile returns the p-th percentile (0-100) of ds (nearest rank); 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
