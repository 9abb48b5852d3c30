package rawjson

import (
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// The word-at-a-time paths must give exactly what the byte-at-a-time code they replaced
// gave. appendStringRef and unescapeRef are that code.

func appendStringRef(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func unescapeRef(raw []byte) string {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(raw) {
			out = utf8.AppendRune(out, utf8.RuneError)
			break
		}
		switch raw[i] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+5 > len(raw) || !isHex4(raw[i+1:i+5]) {
				out = utf8.AppendRune(out, utf8.RuneError)
				continue
			}
			r := hex4(raw[i+1 : i+5])
			i += 4
			if utf16.IsSurrogate(r) && i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' && isHex4(raw[i+3:i+7]) {
				if r2 := hex4(raw[i+3 : i+7]); utf16.DecodeRune(r, r2) != utf8.RuneError {
					r = utf16.DecodeRune(r, r2)
					i += 6
				}
			}
			if utf16.IsSurrogate(r) {
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, raw[i])
		}
	}
	return string(out)
}

// checkString compares the three paths with their references on s.
func checkString(t *testing.T, s string) {
	t.Helper()
	enc := AppendString([]byte("x"), s)
	if want := appendStringRef([]byte("x"), s); string(enc) != string(want) {
		t.Fatalf("AppendString(%q) = %s, want %s", s, enc, want)
	}
	got, ok := String(enc[1:])
	if !ok {
		t.Fatalf("String refused %s", enc[1:])
	}
	if want := strings.ToValidUTF8(s, "\ufffd"); utf8.ValidString(s) && got != want {
		t.Fatalf("String(%s) = %q, want %q", enc[1:], got, want)
	}
	if got := unescape([]byte(s)); got != unescapeRef([]byte(s)) {
		t.Fatalf("unescape(%q) = %q, want %q", s, got, unescapeRef([]byte(s)))
	}
	if got := appendUnescaped([]byte("pre:"), enc[2:len(enc)-1]); string(got) != "pre:"+unescapeRef(enc[2:len(enc)-1]) {
		t.Fatalf("appendUnescaped(%s) = %q", enc[1:], got)
	}
	// The scanner accepts exactly what encoding/json accepts (valid UTF-8 only).
	lit := "\"" + s + "\""
	_, okLit := String([]byte(lit))
	if want := utf8.ValidString(s) && json.Valid([]byte(lit)); okLit != want {
		t.Fatalf("String(%q) ok = %v, encoding/json says %v", lit, okLit, want)
	}
}

func TestSWARMatchesBytewise(t *testing.T) {
	alphabet := []string{"a", "0", " ", ",", ".", "\"", "\\", "<", ">", "&", "\n", "\t", "\x00", "\x1f", "\x7f",
		"é", "😀", "\u2028", "\xff", "\\u00e9", "\\ud83d\\ude00", "\\n", "\\\"", "/", "\\/", "\\u12", "\\x"}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 20000 {
		var b strings.Builder
		for range rng.IntN(40) {
			if rng.IntN(3) == 0 {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			} else {
				b.WriteString(alphabet[rng.IntN(2)]) // mostly plain bytes, as in real payloads
			}
		}
		s := b.String()
		if n%2 == 0 {
			s = strings.Repeat("12345678", rng.IntN(4)) + s // word-aligned and not
		}
		checkString(t, s)
	}
}

func FuzzSWARStrings(f *testing.F) {
	for _, seed := range []string{"", "plain text over eight", `q"uo\te`, "é😀\u2028", "\xff\xfe", `\ud83d\ude00`, "<a&b>"} {
		f.Add(seed)
	}
	f.Fuzz(checkString)
}

// BenchmarkLongString measures the string round trip of a 60 KB modelpush: escaping it
// into a string literal and reading it back.
func BenchmarkLongString(b *testing.B) {
	// A modelpush of a 1000-point ColumnDataSource: numbers, few quotes.
	payload := `{"msgtype": "modelpush", "modelspecs": [{"type": "ColumnDataSource", "data": {"x": [` +
		strings.Repeat(`0.012578782206860073, -0.9998020613786596, `, 1500) + `0.0]}}]}`
	enc := AppendString(nil, payload)
	b.Run("append", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		buf := make([]byte, 0, len(enc))
		for range b.N {
			buf = AppendString(buf[:0], payload)
		}
	})
	b.Run("append-ref", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		buf := make([]byte, 0, len(enc))
		for range b.N {
			buf = appendStringRef(buf[:0], payload)
		}
	})
	b.Run("unescape-ref", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for range b.N {
			unescapeRef(enc[1 : len(enc)-1])
		}
	})
	b.Run("read", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for range b.N {
			if _, ok := String(enc); !ok {
				b.Fatal("not a string")
			}
		}
	})
}

// TestPlainWords checks the word tests against a byte-by-byte definition: every byte value
// at every position among plain bytes, and random words.
func TestPlainWords(t *testing.T) {
	plainStr := func(c byte) bool { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' }
	plainOut := func(c byte) bool { return plainStr(c) && c != '<' && c != '>' && c != '&' }
	check := func(b [8]byte) {
		wantStr, wantOut := true, true
		for _, c := range b {
			wantStr = wantStr && plainStr(c)
			wantOut = wantOut && plainOut(c)
		}
		w := binary.LittleEndian.Uint64(b[:])
		if plainString(w) != wantStr || plainOutput(w) != wantOut {
			t.Fatalf("% x: plainString %v plainOutput %v, want %v %v", b, plainString(w), plainOutput(w), wantStr, wantOut)
		}
	}
	for pos := range 8 {
		for v := range 256 {
			b := [8]byte{'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a'}
			b[pos] = byte(v)
			check(b)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	specials := []byte{0, 0x1f, 0x20, '"', '\\', '<', '>', '&', 0x7f, 0x80, 0xff, '!', '#', '[', ']'}
	for range 200000 {
		var b [8]byte
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = specials[rng.IntN(len(specials))]
			} else {
				b[i] = byte(rng.IntN(256))
			}
		}
		check(b)
	}
}
