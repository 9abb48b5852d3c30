package cluster

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func pushOf(specs ...string) string {
	return `{"msgtype": "modelpush", "modelspecs": [` + strings.Join(specs, ", ") + `]}`
}

func TestPushSeqs(t *testing.T) {
	d := &SeqDoc{DocID: "doc", IDs: []string{"a", "b"}, Points: 50}
	one := func(i int, seq int64) string {
		return strings.TrimSuffix(strings.TrimPrefix(string(d.WriteBody(i, seq)), "["), "]")
	}
	for name, tc := range map[string]struct {
		payload string
		want    []idSeq
	}{
		"one":  {pushOf(one(0, 7)), []idSeq{{"a", 7}}},
		"two":  {pushOf(one(0, 7), one(1, 9)), []idSeq{{"a", 7}, {"b", 9}}},
		"none": {pushOf(`{"type": "Range1d", "id": "r", "attributes": {"start": 1}}`), nil},
		"refs before seq": {pushOf(`{"type": "PlotContext", "id": "pc", "attributes": {"children": [{"type": "X", "id": "a"}, {"type": "Y", "id": "b"}], "seq": 3}}`),
			[]idSeq{{"pc", 3}}},
		"nested and escaped": {pushOf(`{"type": "Plot", "subtype": "Figure", "id": "f", "attributes": {"title": "a \"q\" ] } [ {", "m": {"k": [[1, 2], ["x]"], {}]}, "e": [], "n": null, "seq": -4, "z": [1.5e-3, NaN]}}`),
			[]idSeq{{"f", -4}}},
		"seq first":  {pushOf(`{"attributes": {"seq": 12, "id": "q"}, "type": "T", "id": "q"}`), []idSeq{{"q", 12}}},
		"escaped id": {pushOf(`{"type": "T", "id": "a\u0062", "attributes": {"seq": 1}}`), []idSeq{{"ab", 1}}},
	} {
		got, err := pushSeqs(tc.payload)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v %v, want %v", name, got, err, tc.want)
		}
	}
	if _, err := pushSeqs(`{"msgtype": "modelpush", "modelspecs": [`); err == nil {
		t.Errorf("truncated payload accepted")
	}
}

// TestValidatorFindsFaults checks that the validator reports every kind of fault.
func TestValidatorFindsFaults(t *testing.T) {
	s := Stream{Topic: "bokehplot:d", ID: "a"}
	frame := func(seq int64) string {
		return s.Topic + `:{"msgtype": "modelpush", "modelspecs": [{"type": "T", "id": "a", "attributes": {"seq": ` + strconv.FormatInt(seq, 10) + `}}]}`
	}
	for name, tc := range map[string]struct {
		throughout bool
		frames     []int64
		reconnect  int // index before which a new connection starts (0: none)
		reload     int64
		want       string
	}{
		"clean":           {true, []int64{1, 2, 3, 4}, 0, 0, ""},
		"reordered":       {true, []int64{1, 3, 2, 4}, 0, 0, "reordered"},
		"duplicate":       {true, []int64{1, 2, 2, 3, 4}, 0, 0, "twice"},
		"gap":             {false, []int64{1, 2, 4}, 0, 0, "lost 1 write"},
		"missing tail":    {true, []int64{1, 2, 3}, 0, 0, "final state"},
		"phantom":         {false, []int64{1, 2, 3, 4, 99}, 0, 0, "never acknowledged"},
		"reconnect gap":   {false, []int64{1, 2, 4}, 2, 4, ""},
		"reconnect stale": {false, []int64{1, 2}, 2, 3, "final state"},
		"reload gap":      {false, []int64{1, 4}, 1, 2, "between its reload (seq 2) and the first push"},
		"reload older":    {false, []int64{1, 3, 4}, 1, 3, ""},
	} {
		v := NewValidator()
		for seq := int64(1); seq <= 4; seq++ {
			v.Acked(s, seq)
		}
		l := v.NewClient(name, tc.throughout)
		l.Subscribed(s.Topic)
		l.Connected()
		for i, seq := range tc.frames {
			if tc.reconnect != 0 && i == tc.reconnect {
				l.Connected()
				l.Reloaded(s, tc.reload)
			}
			l.FrameAt(frame(seq), time.Now())
		}
		if tc.reconnect != 0 && tc.reconnect >= len(tc.frames) {
			l.Connected()
			l.Reloaded(s, tc.reload)
		}
		sum := v.Validate(map[Stream]int64{s: 4})
		got := strings.Join(sum.Problems, "; ")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: problems %q, want %q", name, got, tc.want)
		}
	}
}
