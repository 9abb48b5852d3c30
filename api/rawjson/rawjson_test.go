package rawjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCheckAcceptsPythonTokens(t *testing.T) {
	for _, in := range []string{
		`NaN`, `Infinity`, `-Infinity`, `[NaN, Infinity, -Infinity, 1]`,
		`{"a": NaN}`, ` {"x": [1.5e300, -0, 0.25E-3, 123456789012345678901234567890]} `,
		`"\u00e9\ud83d\ude00"`, `[]`, `{}`, `null`, `true`, `false`,
	} {
		if _, err := Check([]byte(in)); err != nil {
			t.Errorf("Check(%s) = %v, want ok", in, err)
		}
	}
}

func TestCheckRejects(t *testing.T) {
	for in, want := range map[string]string{
		``:                  "end of input",
		`{`:                 "expected an object key",
		`{"a" 1}`:           "expected ':'",
		`[1,]`:              "expected a value",
		`[1 2]`:             "expected ',' or ']'",
		`nan`:               `expected "null"`,
		`x`:                 "expected a value",
		`NaNa`:              "after the top-level value",
		`-Inf`:              `expected "Infinity"`,
		`01`:                "after the top-level value",
		`1.`:                "expected a digit",
		`"a` + "\x01" + `"`: "control character",
		`"\x"`:              "invalid escape",
		`"\u12"`:            `invalid \u escape`,
		"\"\xff\"":          "invalid UTF-8",
		`{"a":1}}`:          "after the top-level value",
		`"abc`:              "unterminated string",
	} {
		_, err := Check([]byte(in))
		var se *SyntaxError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
			t.Errorf("Check(%q) = %v, want a SyntaxError containing %q", in, err, want)
		}
	}
}

func TestDepthLimit(t *testing.T) {
	ok := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if _, err := Check([]byte(ok)); err != nil {
		t.Fatalf("depth %d rejected: %v", MaxDepth, err)
	}
	deep := strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1)
	if _, err := Check([]byte(deep)); err == nil || !strings.Contains(err.Error(), "nesting") {
		t.Fatalf("depth %d: err = %v, want nesting error", MaxDepth+1, err)
	}
}

func TestFieldsKeepsRawNumbers(t *testing.T) {
	in := `{"x": 0.10000000000000000555, "big": 123456789012345678901234567890, "n": NaN, "k\"q": "v"}`
	fields, info, err := Fields([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if !info.BareTokens {
		t.Error("BareTokens not reported")
	}
	want := []Field{{"x", []byte("0.10000000000000000555")}, {"big", []byte("123456789012345678901234567890")},
		{"n", []byte("NaN")}, {`k"q`, []byte(`"v"`)}}
	if len(fields) != len(want) {
		t.Fatalf("got %d fields", len(fields))
	}
	for i := range want {
		if fields[i].Key != want[i].Key || string(fields[i].Value) != string(want[i].Value) {
			t.Errorf("field %d = %q:%s, want %q:%s", i, fields[i].Key, fields[i].Value, want[i].Key, want[i].Value)
		}
	}
	if _, _, err := Fields([]byte(`[1]`)); err == nil {
		t.Error("Fields accepted an array")
	}
}

func TestRefs(t *testing.T) {
	in := `{"id": "p", "renderers": [{"type": "GlyphRenderer", "id": "r1"}, {"type": "Plot", "subtype": "Figure", "id": "f"}],
	        "nested": {"deep": [[{"id": "x\u0031", "type": "T"}]]}, "notref": {"type": 1, "id": "z"}}`
	var got []string
	if err := Refs([]byte(in), func(typ, id string) { got = append(got, typ+"/"+id) }); err != nil {
		t.Fatal(err)
	}
	want := "GlyphRenderer/r1 Plot/f T/x1"
	if strings.Join(got, " ") != want {
		t.Errorf("refs = %v, want %s", got, want)
	}
}

func TestSanitize(t *testing.T) {
	in := `{"a": [NaN, Infinity, -Infinity, -1], "s": "NaN Infinity \" I", "b": -Infinity}`
	got := Sanitize([]byte(in))
	var v map[string]any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatalf("sanitized text is not JSON: %v\n%s", err, got)
	}
	want := `{"a": ["NaN", "Infinity", "-Infinity", -1], "s": "NaN Infinity \" I", "b": "-Infinity"}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	plain := []byte(`{"a": 1}`)
	if out := Sanitize(plain); &out[0] != &plain[0] {
		t.Error("Sanitize copied a text without tokens")
	}
}

func TestStringAndAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uo\te`, "tab\tnl\n", "<script>&", "é😀", "\u2028", "\x00"} {
		enc := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(enc, &back); err != nil || back != s {
			t.Errorf("AppendString(%q) = %s, decodes to %q (%v)", s, enc, back, err)
		}
		got, ok := String(enc)
		if !ok || got != s {
			t.Errorf("String(%s) = %q, %v", enc, got, ok)
		}
	}
	if _, ok := String([]byte(`"a" `)); ok {
		t.Error("String accepted trailing space")
	}
	if got := string(AppendString(nil, "bad\xffutf8")); got != `"bad\ufffdutf8"` {
		t.Errorf("invalid UTF-8 encoded as %s", got)
	}
}

func TestAppendObject(t *testing.T) {
	got := AppendObject(nil, []Field{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte(`"x"`)}})
	if string(got) != `{"a": 1, "b": "x"}` {
		t.Errorf("got %s", got)
	}
}

// Pathological inputs must stay linear: the fuzzer found a quadratic string skipper once.
func TestLinearTime(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"a": "`)
	for i := 0; i < 20000; i++ {
		b.WriteString(`\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\"`)
	}
	b.WriteString(`"}`)
	data := []byte(b.String())
	if _, _, ok := FieldsTrusted(data); !ok {
		t.Fatal("FieldsTrusted refused a valid object")
	}
	if _, err := Check(data); err != nil {
		t.Fatal(err)
	}
}
