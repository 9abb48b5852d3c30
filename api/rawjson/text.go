package rawjson

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// unescape decodes the contents of a JSON string literal that contains escapes. Invalid
// escapes (only possible in unvalidated stored text) become U+FFFD instead of panicking.
func unescape(raw []byte) string {
	out := appendUnescaped(make([]byte, 0, len(raw)), raw)
	if len(out) == 0 {
		return ""
	}
	// out is never written again: the string can share it instead of copying it.
	return unsafe.String(&out[0], len(out))
}

// appendUnescaped appends the decoded contents of raw (between the quotes).
func appendUnescaped(out, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		// Copy the run up to the next backslash at once.
		j := bytes.IndexByte(raw[i:], '\\')
		if j < 0 {
			out = append(out, raw[i:]...)
			break
		}
		out = append(out, raw[i:i+j]...)
		i += j + 1
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
	return out
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// String returns the value of a raw JSON string literal (with quotes), and false when value
// is not a valid string.
func String(value []byte) (string, bool) {
	if len(value) < 2 || value[0] != '"' {
		return "", false
	}
	s := scanner{data: value}
	raw, escaped, err := s.str()
	if err != nil || s.pos != len(value) {
		return "", false
	}
	return decodeRaw(raw, escaped), true
}

// Refs validates data and calls fn for every object in it (at any depth, data itself
// included) that has string members "type" and "id": the shape of a model reference.
func Refs(data []byte, fn func(typ, id string)) error {
	s := scanner{data: data, onRef: fn}
	s.skipSpace()
	if err := s.value(); err != nil {
		return err
	}
	return s.end()
}

// Sanitize returns data with every bare NaN, Infinity and -Infinity token replaced by the
// strings "NaN", "Infinity" and "-Infinity", the form BokehJS decodes. data should be valid
// (see Check); it is returned as is when it holds no such token.
func Sanitize(data []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '"':
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
		case 'N', 'I':
			word := "NaN"
			if data[i] == 'I' {
				word = "Infinity"
			}
			start := i
			if data[i] == 'I' && i > 0 && data[i-1] == '-' {
				start, word = i-1, "-Infinity"
			}
			if !bytes.HasPrefix(data[start:], []byte(word)) {
				continue // not a token: data was not valid JSON
			}
			out = append(out, data[last:start]...)
			out = strconv.AppendQuote(out, word)
			i = start + len(word) - 1
			last = i + 1
		}
	}
	if out == nil {
		return data
	}
	return append(out, data[last:]...)
}

// AppendString appends s as a JSON string literal. It escapes what JSON requires plus '<',
// '>' and '&' (so text can sit inside HTML script elements) and U+2028/U+2029.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	return append(appendStringContents(dst, s), '"')
}

// appendStringContents appends s escaped, without the quotes.
func appendStringContents(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		i = skipPlainOutput(s, i)
		if i >= len(s) {
			break
		}
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
	return append(dst, s[start:]...)
}

// AppendObject appends the members as a JSON object.
func AppendObject(dst []byte, fields []Field) []byte {
	dst = append(dst, '{')
	for i, f := range fields {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = AppendString(dst, f.Key)
		dst = append(dst, ": "...)
		dst = append(dst, f.Value...)
	}
	return append(dst, '}')
}
