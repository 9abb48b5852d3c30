// Package rawjson reads and writes bokeh model JSON as raw text: it accepts the bare NaN,
// Infinity and -Infinity tokens the Python client emits and never converts numbers to float64.
package rawjson

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf8"
)

// MaxDepth bounds nesting of arrays and objects; deeper input is rejected instead of
// exhausting the stack. Real plots nest fewer than 10 levels.
const MaxDepth = 256

// SyntaxError says what is wrong with a JSON text and where.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// Info reports properties of a scanned text that callers act on.
type Info struct {
	// BareTokens is true when the text holds a bare NaN, Infinity or -Infinity token, which
	// browsers cannot parse (see Sanitize).
	BareTokens bool
}

type scanner struct {
	data  []byte
	pos   int
	depth int
	info  Info
	onRef func(typ, id string)
	// nested names the member whose object value object() parses with onNested, in the
	// same pass as its parent (see ArrayOfObjects).
	nested   string
	onNested func(f Field)
}

func (s *scanner) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: s.pos, Msg: fmt.Sprintf(format, args...)}
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) describe() string {
	if s.pos >= len(s.data) {
		return "end of input"
	}
	c := s.data[s.pos]
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("character %q", c)
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// value scans one value starting at s.pos (no leading space) and leaves s.pos after it.
func (s *scanner) value() error {
	if s.pos >= len(s.data) {
		return s.errorf("unexpected end of input, expected a value")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(nil)
	case c == '[':
		return s.array(nil)
	case c == '"':
		_, _, err := s.str()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == 'N':
		s.info.BareTokens = true
		return s.literal("NaN")
	case c == 'I':
		s.info.BareTokens = true
		return s.literal("Infinity")
	default:
		return s.errorf("unexpected %s, expected a value", s.describe())
	}
}

func (s *scanner) literal(word string) error {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.errorf("unexpected %s, expected %q", s.describe(), word)
	}
	s.pos += len(word)
	return nil
}

func (s *scanner) number() error {
	d := s.data
	if d[s.pos] == '-' {
		s.pos++
		if s.pos < len(d) && d[s.pos] == 'I' {
			s.info.BareTokens = true
			return s.literal("Infinity")
		}
	}
	if s.pos >= len(d) {
		return s.errorf("unexpected end of input in number")
	}
	switch c := d[s.pos]; {
	case c == '0':
		s.pos++
	case c >= '1' && c <= '9':
		s.pos = skipDigits(d, s.pos+1)
	default:
		return s.errorf("unexpected %s in number", s.describe())
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if err := s.digits(); err != nil {
			return err
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if err := s.digits(); err != nil {
			return err
		}
	}
	return nil
}

func (s *scanner) digits() error {
	d, start := s.data, s.pos
	i := skipDigits(d, start)
	s.pos = i
	if i == start {
		return s.errorf("unexpected %s in number, expected a digit", s.describe())
	}
	return nil
}

// digitMask marks (0x80) the bytes of x that are not ASCII digits: a digit minus '0' does
// not borrow and plus 0x46 does not reach 0x80. Borrows and carries only travel upwards, so
// the lowest marked byte is exactly the first non-digit (what lies above it does not matter).
func digitMask(x uint64) uint64 {
	return (x | (x - 0x3030303030303030) | (x + 0x4646464646464646)) & 0x8080808080808080
}

// skipDigits returns the index of the first non-digit at or after i. Numbers from numpy
// arrays have 15-17 digits, so it tests eight bytes at a time (SWAR).
func skipDigits(d []byte, i int) int {
	for i+8 <= len(d) {
		if m := digitMask(binary.LittleEndian.Uint64(d[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		i += 8
	}
	for i < len(d) && d[i]-'0' < 10 {
		i++
	}
	return i
}

// digits24 counts the digits (0 to 24) at d[i:], which must hold 24 bytes. It has no
// branch: a loop ending after one, two or three words would mispredict on nearly every
// number, since 15-, 16- and 17-digit fractions alternate in real data. (Counting integer
// parts this way too is slower: the chain of dependent loads gets twice as long.)
func digits24(d []byte, i int) int {
	w := d[i : i+24 : i+24]
	n1 := bits.TrailingZeros64(digitMask(binary.LittleEndian.Uint64(w))) >> 3 // 8: all digits
	n2 := bits.TrailingZeros64(digitMask(binary.LittleEndian.Uint64(w[8:]))) >> 3
	n3 := bits.TrailingZeros64(digitMask(binary.LittleEndian.Uint64(w[16:]))) >> 3
	return n1 + n1>>3*(n2+n2>>3*n3)
}

// numberRun skips array elements of the form <number>, (with optional whitespace) starting
// at i, validating each number's grammar, and returns where the first element that is not
// such a number begins, and whether it skipped whitespace other than spaces. Anything
// unusual (a bare token, an exponent, a leading zero, 24 fraction digits, the last element)
// is left to the general scanner, which reports errors.
func numberRun(d []byte, i int) (next int, ctl bool) {
	// Fast path while a whole element fits: sign and up to 23 digits, '.', up to 23 digits,
	// ',' and a space are at most 51 bytes, so every read below stays inside d.
	for i+64 <= len(d) {
		j := i
		if d[j] == '-' {
			j++
		}
		// Integer parts are short (0 to a few digits) and predictable; fractions are not.
		switch c := d[j]; {
		case c == '0':
			j++ // a digit after it fails the checks below: the general scanner reports it
		case c-'1' < 9:
			if j = skipDigits(d, j+1); j > i+24 {
				return i, ctl // keeps the reads below within the 64 bytes
			}
		default:
			return i, ctl
		}
		if d[j] == '.' {
			f := digits24(d, j+1)
			if f == 0 || f == 24 {
				return i, ctl
			}
			j += 1 + f
		}
		if d[j] != ',' {
			return i, ctl
		}
		j++
		if d[j] == ' ' {
			j++
		}
		if d[j] <= ' ' {
			k := skipSpaceAt(d, j)
			ctl = ctl || controlSpace(d[j:k])
			j = k
		}
		i = j
	}
	next, tailCtl := numberRunTail(d, i)
	return next, ctl || tailCtl
}

// numberRunTail is numberRun near the end of d, one bounds-checked step at a time.
func numberRunTail(d []byte, i int) (next int, ctl bool) {
	for {
		j := i
		if j < len(d) && d[j] == '-' {
			j++
		}
		if j >= len(d) {
			return i, ctl
		}
		switch c := d[j]; {
		case c == '0':
			j++
		case c-'1' < 9:
			j = skipDigits(d, j+1)
		default:
			return i, ctl
		}
		if j < len(d) && d[j] == '.' {
			k := skipDigits(d, j+1)
			if k == j+1 {
				return i, ctl
			}
			j = k
		}
		if j >= len(d) || d[j] != ',' {
			return i, ctl
		}
		k := skipSpaceAt(d, j+1)
		ctl = ctl || controlSpace(d[j+1:k])
		i = k
	}
}

// controlSpace reports whether the whitespace ws holds anything but spaces.
func controlSpace(ws []byte) bool {
	for _, c := range ws {
		if c != ' ' {
			return true
		}
	}
	return false
}

// str scans a string literal and returns its raw contents (between the quotes) and whether
// they contain escapes.
func (s *scanner) str() (raw []byte, escaped bool, err error) {
	d := s.data
	start := s.pos + 1
	i := start
	nonASCII := false
	for {
		i = skipPlainString(d, i)
		if i >= len(d) {
			s.pos = i
			return nil, false, s.errorf("unterminated string")
		}
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			raw := d[start:i]
			if nonASCII && !utf8.Valid(raw) {
				s.pos = start
				return nil, false, s.errorf("invalid UTF-8 in string")
			}
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(d) {
				s.pos = i
				return nil, false, s.errorf("unterminated string")
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex4(d[i+2:i+6]) {
					s.pos = i
					return nil, false, s.errorf("invalid \\u escape in string")
				}
				i += 6
			default:
				s.pos = i
				return nil, false, s.errorf("invalid escape in string")
			}
		case c < 0x20:
			s.pos = i
			return nil, false, s.errorf("control character 0x%02x in string", c)
		default:
			if c >= 0x80 {
				nonASCII = true
			}
			i++
		}
	}
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// object scans an object; onField, if not nil, sees each member's decoded key and value span.
// When s.onRef is set, it is called for every object with string "type" and "id" members.
func (s *scanner) object(onField func(f Field)) error {
	if s.depth++; s.depth > MaxDepth {
		return s.errorf("nesting deeper than %d levels", MaxDepth)
	}
	s.pos++ // '{'
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		s.depth--
		return nil
	}
	var refType, refID []byte
	var refTypeEsc, refIDEsc bool
	for {
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.errorf("unexpected %s, expected an object key", s.describe())
		}
		rawKey, keyEsc, err := s.str()
		if err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.errorf("unexpected %s, expected ':' after object key", s.describe())
		}
		s.pos++
		s.skipSpace()
		start := s.pos
		if s.onRef != nil && !keyEsc && start < len(s.data) && s.data[start] == '"' &&
			(string(rawKey) == "type" || string(rawKey) == "id") {
			v, esc, err := s.str()
			if err != nil {
				return err
			}
			if string(rawKey) == "type" {
				refType, refTypeEsc = v, esc
			} else {
				refID, refIDEsc = v, esc
			}
		} else if s.onNested != nil && onField != nil && !keyEsc && string(rawKey) == s.nested &&
			start < len(s.data) && s.data[start] == '{' {
			inner := s.onNested
			s.onNested = nil // only one level
			err := s.object(inner)
			s.onNested = inner
			if err != nil {
				return err
			}
		} else if err := s.value(); err != nil {
			return err
		}
		if onField != nil {
			key := string(rawKey)
			if keyEsc {
				key = unescape(rawKey)
			}
			onField(Field{Key: key, Value: s.data[start:s.pos]})
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.errorf("unexpected end of input in object")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
		case '}':
			s.pos++
			s.depth--
			if refType != nil && refID != nil {
				s.onRef(decodeRaw(refType, refTypeEsc), decodeRaw(refID, refIDEsc))
			}
			return nil
		default:
			return s.errorf("unexpected %s, expected ',' or '}' in object", s.describe())
		}
	}
}

func decodeRaw(raw []byte, escaped bool) string {
	if escaped {
		return unescape(raw)
	}
	return string(raw)
}

// array scans an array; onElem, if not nil, sees each element's span.
func (s *scanner) array(onElem func(value []byte)) error {
	if s.depth++; s.depth > MaxDepth {
		return s.errorf("nesting deeper than %d levels", MaxDepth)
	}
	s.pos++ // '['
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if onElem == nil {
			// Data columns are long runs of plain numbers: take them in one tight loop.
			s.pos, _ = numberRun(s.data, s.pos)
		}
		start := s.pos
		if err := s.value(); err != nil {
			return err
		}
		if onElem != nil {
			onElem(s.data[start:s.pos])
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.errorf("unexpected end of input in array")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
		case ']':
			s.pos++
			s.depth--
			return nil
		default:
			return s.errorf("unexpected %s, expected ',' or ']' in array", s.describe())
		}
	}
}

// end checks that only whitespace follows the top-level value.
func (s *scanner) end() error {
	s.skipSpace()
	if s.pos != len(s.data) {
		return s.errorf("unexpected %s after the top-level value", s.describe())
	}
	return nil
}

// Check validates data as exactly one JSON value (bare NaN/Infinity allowed).
func Check(data []byte) (Info, error) {
	s := scanner{data: data}
	s.skipSpace()
	if err := s.value(); err != nil {
		return s.info, err
	}
	return s.info, s.end()
}

// Field is one object member: its decoded key and its raw value text.
type Field struct {
	Key   string
	Value []byte
}

// Fields validates data as a JSON object and returns its members in order. Values are
// sub-slices of data.
func Fields(data []byte) ([]Field, Info, error) {
	s := scanner{data: data}
	s.skipSpace()
	if s.pos >= len(data) || data[s.pos] != '{' {
		return nil, s.info, s.errorf("unexpected %s, expected an object", s.describe())
	}
	fields := make([]Field, 0, 8)
	err := s.object(func(f Field) { fields = append(fields, f) })
	if err == nil {
		err = s.end()
	}
	return fields, s.info, err
}

// Elements validates data as a JSON array and returns its elements' raw texts.
func Elements(data []byte) ([][]byte, Info, error) {
	s := scanner{data: data}
	s.skipSpace()
	if s.pos >= len(data) || data[s.pos] != '[' {
		return nil, s.info, s.errorf("unexpected %s, expected an array", s.describe())
	}
	var elems [][]byte
	err := s.array(func(v []byte) { elems = append(elems, v) })
	if err == nil {
		err = s.end()
	}
	return elems, s.info, err
}

// ArrayOfObjects validates data as a JSON array of objects and, in one pass, calls elem for
// each element with its members. When an element has a member named nested whose value is an
// object, that object's members are in inner (otherwise inner is empty). The slices are
// reused between calls: copy what you keep.
func ArrayOfObjects(data []byte, nested string, elem func(top, inner []Field) error) (Info, error) {
	var top, inner []Field
	s := scanner{data: data, nested: nested}
	s.onNested = func(f Field) { inner = append(inner, f) }
	onTop := func(f Field) { top = append(top, f) }
	s.skipSpace()
	if s.pos >= len(data) || data[s.pos] != '[' {
		return s.info, s.errorf("unexpected %s, expected an array", s.describe())
	}
	s.pos++
	s.depth = 1
	s.skipSpace()
	if s.pos < len(data) && data[s.pos] == ']' {
		s.pos++
		return s.info, s.end()
	}
	for {
		if s.pos >= len(data) || data[s.pos] != '{' {
			return s.info, s.errorf("unexpected %s, expected an object", s.describe())
		}
		top, inner = top[:0], inner[:0]
		if err := s.object(onTop); err != nil {
			return s.info, err
		}
		if err := elem(top, inner); err != nil {
			return s.info, err
		}
		s.skipSpace()
		if s.pos >= len(data) {
			return s.info, s.errorf("unexpected end of input in array")
		}
		switch data[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
		case ']':
			s.pos++
			return s.info, s.end()
		default:
			return s.info, s.errorf("unexpected %s, expected ',' or ']' in array", s.describe())
		}
	}
}
