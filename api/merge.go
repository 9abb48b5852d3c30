package api

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"unsafe"

	"github.com/bokeh-go/bokeh-server/api/rawjson"
	"github.com/bokeh-go/bokeh-server/storage"
)

// A write merges each incoming model into its stored attributes (§2.4 #4/#5/#8: unspecified
// attributes are kept). All merged models are written once, straight into the modelpush
// text that is both the response and the published message; the stored attributes are
// slices of it. Streaming a 1000-point source thus costs one 40 KB buffer per update.

// mergedModel is one model of a write: its merged members (without "id" and "doc") and,
// once written, its attribute text.
type mergedModel struct {
	typ, subtype, id string
	members          []rawjson.Field
	tokens           bool // stored members kept may hold bare NaN/Infinity
	attrs            []byte
}

// mergeMembers overlays update onto base: base order first, new members appended.
func mergeMembers(base, update []rawjson.Field) []rawjson.Field {
	out := make([]rawjson.Field, 0, len(base)+len(update))
	used := make([]bool, len(update))
	for _, f := range base {
		for j, u := range update {
			if u.Key == f.Key {
				f, used[j] = u, true
			}
		}
		out = append(out, f)
	}
	for j, u := range update {
		if !used[j] {
			out = append(out, u)
		}
	}
	return out
}

// writeModelPush writes {"msgtype": "modelpush", "modelspecs": [...]} for models, setting
// each model's attrs to its slice of the text and recording its members' new value slices.
func writeModelPush(models []*mergedModel, docid string) []byte {
	size := 64
	for _, m := range models {
		size += 96 + len(m.typ) + len(m.subtype) + 2*len(m.id) + len(docid)
		for _, f := range m.members {
			size += len(f.Key) + len(f.Value) + 6
		}
	}
	buf := uninitialized(size)
	buf = append(buf, `{"msgtype": "modelpush", "modelspecs": [`...)
	for i, m := range models {
		if i > 0 {
			buf = append(buf, ", "...)
		}
		buf = append(buf, `{"type": `...)
		buf = rawjson.AppendString(buf, m.typ)
		if m.subtype != "" {
			buf = append(buf, `, "subtype": `...)
			buf = rawjson.AppendString(buf, m.subtype)
		}
		buf = append(buf, `, "id": `...)
		buf = rawjson.AppendString(buf, m.id)
		buf = append(buf, `, "attributes": `...)
		start := len(buf)
		buf = append(buf, '{')
		offsets := make([][2]int, len(m.members))
		for j, f := range m.members {
			buf = rawjson.AppendString(buf, f.Key)
			buf = append(buf, ": "...)
			offsets[j][0] = len(buf)
			buf = append(buf, f.Value...)
			offsets[j][1] = len(buf)
			buf = append(buf, ", "...)
		}
		buf = append(buf, `"id": `...)
		buf = rawjson.AppendString(buf, m.id)
		buf = append(buf, `, "doc": `...)
		buf = rawjson.AppendString(buf, docid)
		buf = append(buf, '}')
		// Slices taken before a reallocation keep pointing at an identical, never
		// modified copy, so the estimate above only needs to be close.
		m.attrs = buf[start:len(buf):len(buf)]
		for j := range m.members {
			m.members[j].Value = buf[offsets[j][0]:offsets[j][1]:offsets[j][1]]
		}
		buf = append(buf, '}')
	}
	return append(buf, "]}"...)
}

// uninitialized returns an empty slice of capacity n whose memory was not zeroed, as
// strings.Builder gets it: appends write every byte before anything can read it. A 60 KB
// update's modelpush is a fresh buffer per request (stored models are slices of it), so
// zeroing it first would be pure waste on the hot path.
func uninitialized(n int) []byte {
	var b strings.Builder
	b.Grow(max(n, 1))
	b.WriteByte(0)
	return unsafe.Slice(unsafe.StringData(b.String()), max(n, 1))[:0]
}

// fieldCache remembers the members of the attributes this process last wrote for each
// model, so the next update of a streaming source need not split 40 KB of stored text
// again. An entry is used only when the stored text is still exactly what we wrote.
type fieldCache struct {
	mu    sync.Mutex
	m     map[string]cachedFields
	bytes int
}

type cachedFields struct {
	attrs   []byte
	members []rawjson.Field
	tokens  bool
}

// fieldCacheBytes bounds the attribute text the cache keeps alive.
const fieldCacheBytes = 64 << 20

func newFieldCache() *fieldCache { return &fieldCache{m: map[string]cachedFields{}} }

func fieldCacheKey(scope storage.Scope, k storage.ModelKey) string {
	return scope.DocID + "\x00" + scope.Temp + "\x00" + k.Type + "\x00" + k.ID
}

func (c *fieldCache) get(key string, stored []byte) (cachedFields, bool) {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok || len(e.attrs) != len(stored) || len(stored) == 0 {
		return e, false
	}
	if &e.attrs[0] == &stored[0] || bytes.Equal(e.attrs, stored) {
		return e, true
	}
	return e, false
}

func (c *fieldCache) put(key string, e cachedFields) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[key]; ok {
		c.bytes -= len(old.attrs)
	}
	for k, old := range c.m {
		if c.bytes+len(e.attrs) <= fieldCacheBytes {
			break
		}
		delete(c.m, k)
		c.bytes -= len(old.attrs)
	}
	c.m[key] = e
	c.bytes += len(e.attrs)
}

// storedMembers splits stored attributes (nil for a new model) into members without "id"
// and "doc", from the cache when possible.
func (s *Server) storedMembers(key string, stored []byte, id string) ([]rawjson.Field, bool, error) {
	if stored == nil {
		return nil, false, nil
	}
	if e, ok := s.fields.get(key, stored); ok {
		return e.members, e.tokens, nil
	}
	// Stored text was validated when written; the fast splitter skips the number grammar.
	fields, info, ok := rawjson.FieldsTrusted(stored)
	if !ok {
		_, _, err := rawjson.Fields(stored)
		return nil, false, fmt.Errorf("stored model %s is not a JSON object: %w", id, err)
	}
	members, _ := withoutIDDoc(fields)
	return members, info.BareTokens, nil
}
