package rawjson

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecoder checks the decoder against encoding/json on every input: both must agree on
// validity once bare tokens are sanitized, and nothing may panic.
func FuzzDecoder(f *testing.F) {
	for _, seed := range []string{
		`{"type": "ColumnDataSource", "id": "a", "attributes": {"data": {"x": [1, NaN, Infinity, -Infinity]}}}`,
		`[{"type": "Plot", "subtype": "Figure", "id": "p"}]`,
		`123456789012345678901234567890e400`, `"\ud83d\ude00"`, "\"\xff\xfe\"", `[[[[[[[[]]]]]]]]`,
		strings.Repeat("[", 300) + strings.Repeat("]", 300), `{"a":-Infinity}`, `-`, `"\u`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = Sanitize(data) // must not panic, whatever the input
		trusted, tinfo, tok := FieldsTrusted(data)
		info, err := Check(data)
		depthOK := maxDepth(data) <= MaxDepth
		if err != nil {
			// encoding/json accepts invalid UTF-8 in strings; we refuse it on purpose.
			if depthOK && !info.BareTokens && utf8.Valid(data) && json.Valid(data) {
				t.Fatalf("rejected valid JSON %q: %v", data, err)
			}
			return
		}
		clean := Sanitize(data)
		if !json.Valid(clean) {
			t.Fatalf("accepted %q, sanitized %q is not JSON", data, clean)
		}
		if !info.BareTokens && string(clean) != string(data) {
			t.Fatalf("Sanitize changed a text without tokens: %q -> %q", data, clean)
		}
		var refs int
		if err := Refs(data, func(string, string) { refs++ }); err != nil {
			t.Fatalf("Refs failed on accepted input %q: %v", data, err)
		}
		if fields, finfo, err := Fields(data); err == nil {
			if !tok || len(trusted) != len(fields) || tinfo.BareTokens != finfo.BareTokens {
				t.Fatalf("FieldsTrusted disagrees with Fields on %q: %v %d/%d", data, tok, len(trusted), len(fields))
			}
			for i := range fields {
				if trusted[i].Key != fields[i].Key || string(trusted[i].Value) != string(fields[i].Value) {
					t.Fatalf("FieldsTrusted member %d of %q: %q=%q, want %q=%q", i, data, trusted[i].Key, trusted[i].Value, fields[i].Key, fields[i].Value)
				}
			}
			obj := AppendObject(nil, fields)
			if _, err := Check(obj); err != nil {
				t.Fatalf("re-encoded object %q invalid: %v", obj, err)
			}
		}
	})
}

// maxDepth counts bracket nesting outside strings (for valid-looking inputs only).
func maxDepth(data []byte) int {
	depth, max, inStr := 0, 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '[' || c == '{'):
			depth++
			if depth > max {
				max = depth
			}
		case !inStr && (c == ']' || c == '}'):
			depth--
		}
	}
	return max
}
