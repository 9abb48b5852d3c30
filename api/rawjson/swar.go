package rawjson

import (
	"encoding/binary"
	"unsafe"
)

// Eight bytes at a time (SWAR): long strings are mostly bytes that need no attention, so
// the string scanner and the escaper skip words of such bytes and look at single bytes
// only near the others.

const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// plainString is true when none of the eight bytes of w ends or escapes a string literal
// or needs a second look: no '"', '\\', control character (< 0x20) or non-ASCII byte.
//
// A byte below the subtrahend makes its difference borrow into the high bit; bytes that
// pass (0x20 to 0x7f, not the two specials) never do, and never borrow from the next byte.
// So the lowest byte that needs attention always shows, and a word without one shows none
// (what lies above such a byte does not matter: the caller looks at bytes from there on).
func plainString(w uint64) bool { return attention(w) == 0 }

// attention is non-zero when plainString(w) is false.
func attention(w uint64) uint64 {
	return (w | (w - lsbs*0x20) | ((w ^ (lsbs * '"')) - lsbs) | ((w ^ (lsbs * '\\')) - lsbs)) & msbs
}

// plainOutput is plainString that also refuses the bytes AppendString escapes for HTML:
// '<', '>' and '&'.
func plainOutput(w uint64) bool { return outputAttention(w) == 0 }

// outputAttention is non-zero when plainOutput(w) is false.
func outputAttention(w uint64) uint64 {
	return (w | (w - lsbs*0x20) | ((w ^ (lsbs * '"')) - lsbs) | ((w ^ (lsbs * '\\')) - lsbs) |
		((w ^ (lsbs * '<')) - lsbs) | ((w ^ (lsbs * '>')) - lsbs) | ((w ^ (lsbs * '&')) - lsbs)) & msbs
}

// skipPlainString returns the index of the first word at or after i that is not
// plainString (or of the last, partial word).
func skipPlainString(d []byte, i int) int {
	// Four words per step, tested together with one branch: their tests are independent,
	// so they overlap in the CPU.
	for i+32 <= len(d) {
		w := d[i : i+32 : i+32]
		if attention(binary.LittleEndian.Uint64(w))|attention(binary.LittleEndian.Uint64(w[8:]))|
			attention(binary.LittleEndian.Uint64(w[16:]))|attention(binary.LittleEndian.Uint64(w[24:])) != 0 {
			break
		}
		i += 32
	}
	for i+8 <= len(d) && plainString(binary.LittleEndian.Uint64(d[i:])) {
		i += 8
	}
	return i
}

func skipPlainOutput(s string, i int) int {
	// s is only read: viewing it as bytes lets each word be one load.
	d := unsafe.Slice(unsafe.StringData(s), len(s))
	for i+32 <= len(d) {
		w := d[i : i+32 : i+32]
		if outputAttention(binary.LittleEndian.Uint64(w))|outputAttention(binary.LittleEndian.Uint64(w[8:]))|
			outputAttention(binary.LittleEndian.Uint64(w[16:]))|outputAttention(binary.LittleEndian.Uint64(w[24:])) != 0 {
			break
		}
		i += 32
	}
	for i+8 <= len(d) && plainOutput(binary.LittleEndian.Uint64(d[i:])) {
		i += 8
	}
	return i
}
