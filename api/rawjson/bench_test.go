package rawjson

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

// benchBody is a data column as numpy writes it: 3000 floats of 15-19 characters.
func benchBody() []byte {
	var b strings.Builder
	b.WriteString("[")
	for i := 0; i < 3000; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatFloat(math.Sin(float64(i)*0.01), 'g', -1, 64))
	}
	b.WriteString("]")
	return []byte(b.String())
}

func BenchmarkCheckNumbers(b *testing.B) {
	body := benchBody()
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		if _, err := Check(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTrustedNumbers(b *testing.B) {
	body := append([]byte(`{"a": `), benchBody()...)
	body = append(body, '}')
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		if _, _, ok := FieldsTrusted(body); !ok {
			b.Fatal("bad")
		}
	}
}
