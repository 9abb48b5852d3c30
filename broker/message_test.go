package broker

import (
	"slices"
	"strings"
	"testing"

	"github.com/bokeh-go/bokeh-server/storage/rawjson"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	payloads := []string{
		`{"msgtype": "modelpush", "modelspecs": []}`,
		`{"a": "quote \" backslash \\ slash /"}`,
		"line one\nline two\r\n\ttab",
		"unicode: héllo wörld — 日本語 🙂 \u2028\u2029",
		`</script><script>alert(1)</script> & more`,
		"reload",
		"",
		"control \x00\x01\x1f chars",
	}
	for _, p := range payloads {
		for _, exclude := range [][]string{nil, {"c1"}, {"c1", "c\"2", "ü"}} {
			in := Message{Topic: PlotTopic("doc-1"), Payload: []byte(p), Exclude: exclude}
			env := in.AppendEnvelope(nil)
			out, err := ParseEnvelope(env)
			if err != nil {
				t.Fatalf("ParseEnvelope(%s): %v", env, err)
			}
			if out.Topic != in.Topic || string(out.Payload) != p || !slices.Equal(out.Exclude, exclude) {
				t.Fatalf("round trip of %q/%q: got %+v", p, exclude, out)
			}
		}
	}
}

func TestEnvelopeAcceptsPythonForm(t *testing.T) {
	env := `{"topic": "bokehuser:defaultuser", "msg": "{\"msgtype\": \"docchange\"}", "exclude": []}`
	m, err := ParseEnvelope([]byte(env))
	if err != nil {
		t.Fatal(err)
	}
	if m.Topic != UserTopic("defaultuser") || string(m.Payload) != `{"msgtype": "docchange"}` || len(m.Exclude) != 0 {
		t.Fatalf("got %+v", m)
	}
}

func TestParseEnvelopeErrors(t *testing.T) {
	bad := []string{
		``,
		`not json`,
		`[]`,
		`{"topic": "bokehplot:a", "msg": "x", "exclude": []} trailing`,
		`{"msg": "x", "exclude": []}`,
		`{"topic": "bokehplot:a", "exclude": []}`,
		`{"topic": 1, "msg": "x"}`,
		`{"topic": "bokehplot:a", "msg": {"msgtype": "modelpush"}}`,
		`{"topic": "bokehplot:a", "msg": "x", "exclude": "c1"}`,
		`{"topic": "bokehplot:a", "msg": "x", "exclude": [1]}`,
		`{"topic": "nocolon", "msg": "x"}`,
		`{"topic": "a:b:c", "msg": "x"}`,
		`{"topic": ":b", "msg": "x"}`,
		`{"topic": "a:", "msg": "x"}`,
		`{"topic": "bokehplot:a", "msg": "unterminated`,
		"{\"topic\": \"bokehplot:a\", \"msg\": \"\xff\"}",
		// The layout AppendEnvelope writes, which a worker decodes in one pass, broken after
		// the payload was already decoded.
		`{"topic": "bokehplot:a", "msg": "x", "exclude": [],}`,
		`{"topic": "bokehplot:a", "msg": "x",}`,
		`{"topic": "bokehplot:a", "msg": "x" "exclude": []}`,
		`{"topic": "bokehplot:a", "msg": "x", "exclude": []`,
		`{"topic": "bokehplot:a", "msg": "x", "exclude": []}}`,
		`{"topic": "bokehplot:a", "msg": "x", "msg": "y"}`,
		`{"topic": "bokehplot:a", "msg": "x", "topic": "bokehplot:b"}`,
		`{"topic": "bokehplot:a", "msg": "x\q"}`,
		"{\"topic\": \"bokehplot:a\", \"msg\": \"x\x01\"}",
		`{"topic": "bokehplot", "msg": "x"}`,
	}
	for _, b := range bad {
		if m, err := ParseEnvelope([]byte(b)); err == nil {
			t.Errorf("ParseEnvelope(%q) = %+v, want error", b, m)
		} else if !strings.HasPrefix(err.Error(), "envelope") {
			t.Errorf("ParseEnvelope(%q) error %q lacks context", b, err)
		}
		if m, err := parseEnvelope([]byte(b), true); err == nil {
			t.Errorf("in place %q = %+v, want error", b, m)
		} else if !strings.HasPrefix(err.Error(), "envelope") {
			t.Errorf("in place %q: error %q lacks context", b, err)
		}
	}
}

func FuzzParseEnvelope(f *testing.F) {
	for _, seed := range []string{
		`{"topic": "bokehplot:a", "msg": "{\"msgtype\": \"modelpush\"}", "exclude": ["c"]}`,
		`{"topic": "debug:debug", "msg": "reload", "exclude": []}`,
		`{"topic": "a:b:c", "msg": ""}`, `{"topic": "x:\u00e9", "msg": "\ud800"}`, `{`, `{"exclude": [[]]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseEnvelope(data)
		if err != nil {
			if m, err := parseEnvelope(append([]byte(nil), data...), true); err == nil {
				t.Fatalf("in-place decoding accepted %q (%+v), ParseEnvelope did not", data, m)
			}
			return
		}
		if !ValidTopic(m.Topic) {
			t.Fatalf("accepted invalid topic %q", m.Topic)
		}
		again, err := ParseEnvelope(m.AppendEnvelope(nil))
		if err != nil {
			t.Fatalf("re-encoded envelope of %q does not parse: %v", data, err)
		}
		if again.Topic != m.Topic || string(again.Payload) != string(m.Payload) || !slices.Equal(again.Exclude, m.Exclude) || again.Ack != m.Ack {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
		// Decoding in place (as the subscriber does) gives the same message.
		inPlace, err := parseEnvelope(append([]byte(nil), data...), true)
		if err != nil || inPlace.Topic != m.Topic || string(inPlace.Payload) != string(m.Payload) ||
			string(inPlace.Frame) != m.Topic+":"+string(m.Payload) || !slices.Equal(inPlace.Exclude, m.Exclude) || inPlace.Ack != m.Ack {
			t.Fatalf("in-place decoding of %q: %+v, %v; want %+v", data, inPlace, err, m)
		}
	})
}

// TestParseEnvelopeInPlace checks the subscriber's decoding, which overwrites the envelope
// with the frame: same result as ParseEnvelope, whatever the member order and escapes.
func TestParseEnvelopeInPlace(t *testing.T) {
	payloads := []string{"", "plain", `{"msgtype": "modelpush", "a": "q\"b\\s/"}`, "nl\n\ttab \u2028 é 🙂 <&>",
		strings.Repeat(`{"x": [1.5, 2.5], "s": "\""}, `, 300)}
	for _, p := range payloads {
		in := Message{Topic: PlotTopic("doc-1"), Payload: []byte(p), Exclude: []string{"c1"}}
		envs := []string{
			string(in.AppendEnvelope(nil)),
			// Other encoders may order the members differently.
			`{"msg": ` + strconvQuote(p) + `, "exclude": ["c1"], "topic": "bokehplot:doc-1"}`,
			`{"exclude": ["c1"], "topic": "bokehplot:doc-1", "msg": ` + strconvQuote(p) + `}`,
		}
		for _, env := range envs {
			want, err := ParseEnvelope([]byte(env))
			if err != nil {
				t.Fatalf("ParseEnvelope(%s): %v", env, err)
			}
			if string(want.Frame) != in.Topic+":"+p {
				t.Fatalf("frame of %s: %q", env, want.Frame)
			}
			buf := []byte(env)
			got, err := parseEnvelope(buf, true)
			if err != nil {
				t.Fatalf("in place %s: %v", env, err)
			}
			if got.Topic != want.Topic || string(got.Payload) != p || string(got.Frame) != string(want.Frame) ||
				!slices.Equal(got.Exclude, want.Exclude) {
				t.Fatalf("in place %s: got %+v", env, got)
			}
		}
	}
}

func strconvQuote(s string) string { return string(rawjson.AppendString(nil, s)) }

// BenchmarkParseEnvelopeInPlace decodes the envelope of a 1000-point update as a worker
// does (each iteration first restores the envelope the previous one overwrote).
func BenchmarkParseEnvelopeInPlace(b *testing.B) {
	var payload strings.Builder
	payload.WriteString(`{"msgtype": "modelpush", "modelspecs": [{"type": "ColumnDataSource", "id": "s", "attributes": {"data": {"x": [`)
	for i := range 3000 {
		if i > 0 {
			payload.WriteString(", ")
		}
		payload.WriteString("-0.8414709848078965")
	}
	payload.WriteString(`]}, "id": "s", "doc": "d"}}]}`)
	env := Message{Topic: PlotTopic("d"), Payload: []byte(payload.String())}.AppendEnvelope(nil)
	buf := make([]byte, len(env))
	b.SetBytes(int64(len(env)))
	for b.Loop() {
		copy(buf, env)
		if _, err := parseEnvelope(buf, true); err != nil {
			b.Fatal(err)
		}
	}
}
