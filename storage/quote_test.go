package storage

import "testing"

func TestQuoteRedisConfig(t *testing.T) {
	for in, want := range map[string]string{
		"":                `""`,
		"plain/dir 1":     `"plain/dir 1"`,
		`a"b\c`:           `"a\"b\\c"`,
		"line\nbreak\x7f": `"line\x0abreak\x7f"`,
		"é":               `"\xc3\xa9"`,
	} {
		if got := QuoteRedisConfig(in); got != want {
			t.Errorf("QuoteRedisConfig(%q) = %s, want %s", in, got, want)
		}
	}
}
