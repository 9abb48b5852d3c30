package rawjson

import (
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// DecodeInPlace validates the string literal whose contents start at b[r] (just after its
// opening quote), exactly as Check would, and writes its decoded text to b[w:] in the same
// pass. w must not exceed r: escapes only shrink, so writing never overtakes reading. It
// returns the index after the closing quote and the end of the decoded text. On error b
// may have been partly overwritten.
//
// A worker decodes every large modelpush this way: validating first and decoding in a
// second pass read 60 KB twice per update.
func DecodeInPlace(b []byte, r, w int) (next, end int, err error) {
	if w > r || r > len(b) {
		return 0, 0, errors.New("rawjson: DecodeInPlace would write ahead of its input")
	}
	run := r // start of the plain bytes read but not yet copied
	for {
		r = skipPlainString(b, r)
		if r >= len(b) {
			return 0, 0, &SyntaxError{Offset: len(b), Msg: "unterminated string"}
		}
		switch c := b[r]; {
		case c == '"':
			w += copy(b[w:], b[run:r])
			return r + 1, w, nil
		case c == '\\':
			w += copy(b[w:], b[run:r])
			if r, w, err = decodeEscape(b, r, w); err != nil {
				return 0, 0, err
			}
			run = r
		case c < 0x20:
			return 0, 0, &SyntaxError{Offset: r, Msg: "control character in string"}
		case c < utf8.RuneSelf:
			r++ // a byte the word test flagged only because of its neighbours
		default:
			rn, size := utf8.DecodeRune(b[r:])
			if rn == utf8.RuneError && size == 1 {
				return 0, 0, &SyntaxError{Offset: r, Msg: "invalid UTF-8 in string"}
			}
			r += size
		}
	}
}

// decodeEscape decodes the escape at b[r] ('\\') into b[w:] and returns the positions after
// both. A \u escape is at least 6 bytes and decodes to at most 4, a pair to 4 from 12.
func decodeEscape(b []byte, r, w int) (int, int, error) {
	if r+1 >= len(b) {
		return 0, 0, &SyntaxError{Offset: r, Msg: "unterminated escape"}
	}
	var out byte
	switch b[r+1] {
	case '"', '\\', '/':
		out = b[r+1]
	case 'b':
		out = '\b'
	case 'f':
		out = '\f'
	case 'n':
		out = '\n'
	case 'r':
		out = '\r'
	case 't':
		out = '\t'
	case 'u':
		if r+6 > len(b) || !isHex4(b[r+2:r+6]) {
			return 0, 0, &SyntaxError{Offset: r, Msg: `invalid \u escape`}
		}
		rn := hex4(b[r+2 : r+6])
		r += 6
		if utf16.IsSurrogate(rn) && r+6 <= len(b) && b[r] == '\\' && b[r+1] == 'u' && isHex4(b[r+2:r+6]) {
			if pair := utf16.DecodeRune(rn, hex4(b[r+2:r+6])); pair != utf8.RuneError {
				rn = pair
				r += 6
			}
		}
		if utf16.IsSurrogate(rn) {
			rn = utf8.RuneError // as appendUnescaped: a lone surrogate is not text
		}
		return r, w + utf8.EncodeRune(b[w:], rn), nil
	default:
		return 0, 0, &SyntaxError{Offset: r, Msg: "invalid escape"}
	}
	b[w] = out
	return r + 2, w + 1, nil
}
