package rawjson

import (
	"strings"
	"testing"
)

// checkDecodeInPlace compares DecodeInPlace on the literal starting at lit[0] ('"') with
// Check and String, writing from several distances behind the reader.
func checkDecodeInPlace(t *testing.T, lit string) {
	t.Helper()
	// The literal followed by more text without quotes, as the rest of an envelope.
	doc := lit + `, 1]}`
	end := -1
	_, checkErr := Check([]byte(lit))
	want, wantOK := String([]byte(lit))
	for _, gap := range []int{0, 1, 14} {
		b := []byte(strings.Repeat("x", gap) + doc)
		next, n, err := DecodeInPlace(b, gap+1, 0)
		if err == nil && next-gap < len(lit) {
			// An unescaped quote inside lit ends the literal early: Check of lit alone
			// fails on what follows it, which is not DecodeInPlace's business.
			continue
		}
		if (err == nil) != (checkErr == nil && wantOK) {
			t.Fatalf("DecodeInPlace(%q) err %v; Check err %v, String ok %v", lit, err, checkErr, wantOK)
		}
		if err != nil {
			continue
		}
		if got := string(b[:n]); got != want {
			t.Fatalf("DecodeInPlace(%q) = %q, want %q", lit, got, want)
		}
		if end >= 0 && next-gap != end {
			t.Fatalf("DecodeInPlace(%q): end %d depends on the gap", lit, next)
		}
		end = next - gap
		if end != len(lit) {
			t.Fatalf("DecodeInPlace(%q) ended at %d, want %d", lit, end, len(lit))
		}
	}
}

func TestDecodeInPlace(t *testing.T) {
	long := strings.Repeat(`{\"x\": [0.8414709848078965, -1.5e-3], \"s\": \"\\\\ \\u00e9\"}, `, 200)
	for _, lit := range []string{
		`""`, `"plain"`, `"q\"b\\s\/"`, `"\b\f\n\r\t"`, `"\u00e9\u2028"`, `"\ud83d\ude00"`, `"\ud800"`,
		`"\ud800\u0041"`, `"\udc00"`, `"é 日本語 🙂"`, "\"\xff\"", "\"\xed\xa0\x80\"", "\"a\x01\"", `"\x"`,
		`"\u12"`, `"\u12g4"`, `"unterminated`, `"ends in escape\`, `"` + long + `"`,
		`"` + strings.Repeat("a", 31) + `\"` + strings.Repeat("b", 33) + `"`,
		`"` + strings.Repeat("é", 40) + `"`, `"` + strings.Repeat("a", 40) + "\x1f" + `"`,
	} {
		checkDecodeInPlace(t, lit)
	}
	if _, _, err := DecodeInPlace([]byte(`"ab"`), 1, 2); err == nil {
		t.Fatal("writing ahead of the reader accepted")
	}
}

func FuzzDecodeInPlace(f *testing.F) {
	for _, seed := range []string{`plain`, `q\"b\\`, `\ud83d\ude00`, "\xff", `\u12`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkDecodeInPlace(t, `"`+s+`"`)
	})
}
