package rawjson

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// numberColumn puts s at the start of a data column long enough for numberRun's fast path
// (which needs 64 bytes ahead) to read all of s.
func numberColumn(s string) []byte {
	return []byte("[" + s + ", " + strings.Repeat("0.5, ", 20) + "1]")
}

// checkAgainstStdlib fails when Check and encoding/json disagree on data's validity.
func checkAgainstStdlib(t *testing.T, data []byte) {
	t.Helper()
	info, err := Check(data)
	if err != nil {
		if !info.BareTokens && utf8.Valid(data) && json.Valid(data) {
			t.Fatalf("rejected valid JSON %q: %v", data, err)
		}
		return
	}
	if !json.Valid(Sanitize(data)) {
		t.Fatalf("accepted invalid JSON %q", data)
	}
}

func TestNumberRunGrammar(t *testing.T) {
	digits := strings.Repeat("1234567890", 3)
	for _, s := range []string{
		"0", "-0", "0.5", "-0.8414709848078965", "12.25", "01", "-01", "00.5", "1.", "-", "-.5", ".5",
		"1.2.3", "1..2", "1,,2", "1 , 2", "1e5", "1.5E-3", "-Infinity", "NaN", "1, -", "+1", "0x1",
		digits[:23], digits[:24], digits[:25], "1." + digits[:23], "1." + digits[:24], "1." + digits[:30],
		"-" + digits[:24] + "." + digits[:24], "0." + digits[:16] + ", 0." + digits[:17],
		"1,2", "1,  2", "1,\t2", "1,\n2", "1 ,2", "1]", "1, ]", "1 2", "1-2", "1.-2", "1.2-3",
	} {
		checkAgainstStdlib(t, numberColumn(s))
	}
	// A run of digits longer than the fast path's window, right at the end of the input.
	for _, s := range []string{"[" + strings.Repeat("1", 64), "[" + strings.Repeat("1", 64) + "]",
		"[1, " + strings.Repeat("9", 70) + ".5]", "[0." + strings.Repeat("9", 70) + "]"} {
		checkAgainstStdlib(t, []byte(s))
	}
	// The fast path and the tail must agree on a plain column of every length near the
	// 64-byte boundary.
	for n := 1; n < 40; n++ {
		col := "[" + strings.TrimSuffix(strings.Repeat("-0.8414709848078965, ", n), ", ") + "]"
		if _, err := Check([]byte(col)); err != nil {
			t.Fatalf("%d numbers: %v", n, err)
		}
	}
}

// FuzzNumberColumn compares numberRun (through Check) with encoding/json on inputs that sit
// where numberRun's fast path reads them.
func FuzzNumberColumn(f *testing.F) {
	for _, seed := range []string{"0.1, -2.5", "01", "1.2.3", "-", "1e5", "123456789012345678901234567890.5"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkAgainstStdlib(t, numberColumn(s))
	})
}
