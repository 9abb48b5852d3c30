package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bokeh-go/bokeh-server/storage"
)

func scratchModel(id string, size int) storage.Model {
	return storage.Model{Type: "T", ID: id, Attrs: []byte(strings.Repeat("x", size-1-len(id)))}
}

// refusedWith fails unless err is a 429 whose message contains want.
func refusedWith(t *testing.T, err error, want string) {
	t.Helper()
	var he *echo.HTTPError
	if !errors.As(err, &he) || he.Code != http.StatusTooManyRequests || !strings.Contains(fmt.Sprint(he.Message), want) {
		t.Fatalf("got %v, want 429 with %q", err, want)
	}
}

func TestScratchQuotas(t *testing.T) {
	now := time.Unix(1000, 0)
	limits := ScratchLimits{DocBytes: 1000, DocCopies: 5, ViewerBytes: 300, ViewerCopies: 3, WritesPerSec: 1000, WriteBurst: 1000}
	q := newScratchQuotas(limits, time.Hour)
	admit := func(doc, temp, viewer string, models ...storage.Model) error {
		_, err := q.admit(doc, temp, viewer, models, now)
		return err
	}

	// Per viewer, bytes: 3 × 100 fit, a rewrite of the same model costs only its growth.
	for i := range 3 {
		if err := admit("d", fmt.Sprint("t", i), "v1", scratchModel("m", 100)); err != nil {
			t.Fatal(err)
		}
	}
	refusedWith(t, admit("d", "t0", "v1", scratchModel("m", 101)), "this viewer's scratch copies")
	if err := admit("d", "t0", "v1", scratchModel("m", 90)); err != nil {
		t.Fatalf("shrinking a model: %v", err)
	}
	// Per viewer, count: a fourth copy is refused whatever its size.
	refusedWith(t, admit("d", "t3", "v1", scratchModel("m", 5)), "most scratch copies allowed (3)")
	// Another viewer is not held by v1's quota.
	if err := admit("d", "u0", "v2", scratchModel("m", 100)); err != nil {
		t.Fatal(err)
	}
	// Per document, count: 5 copies.
	if err := admit("d", "u1", "v2", scratchModel("m", 10)); err != nil {
		t.Fatal(err)
	}
	refusedWith(t, admit("d", "w0", "v3", scratchModel("m", 10)), "this document has the most scratch copies allowed (5)")
	if err := admit("other-doc", "w0", "v3", scratchModel("m", 10)); err != nil {
		t.Fatalf("another document: %v", err)
	}

	// Expired copies free their shares.
	now = now.Add(2 * time.Hour)
	if err := admit("d", "w1", "v3", scratchModel("m", 10)); err != nil {
		t.Fatalf("after the copies expired: %v", err)
	}
	if len(q.copies) != 1 || q.docs["d"].copies != 1 || q.viewers["v1"] != nil {
		t.Fatalf("after expiry: %d copies, doc %+v, v1 %+v", len(q.copies), q.docs["d"], q.viewers["v1"])
	}
}

func TestScratchDocBytesAndUndo(t *testing.T) {
	now := time.Unix(1000, 0)
	q := newScratchQuotas(ScratchLimits{DocBytes: 250, ViewerBytes: 1000, WritesPerSec: 1000, WriteBurst: 1000}, time.Hour)
	if _, err := q.admit("d", "t1", "a", []storage.Model{scratchModel("m", 200)}, now); err != nil {
		t.Fatal(err)
	}
	_, err := q.admit("d", "t2", "b", []storage.Model{scratchModel("m", 60)}, now)
	refusedWith(t, err, "scratch copies of this document would exceed 250 bytes")

	// A write that could not be stored is taken back out, fresh copy included.
	undo, err := q.admit("d", "t3", "b", []storage.Model{scratchModel("m", 40), scratchModel("n", 10)}, now)
	if err != nil {
		t.Fatal(err)
	}
	undo()
	if q.copies[scratchKey{"d", "t3"}] != nil || q.docs["d"].bytes != 200 || q.docs["d"].copies != 1 || q.viewers["b"].copies != 0 {
		t.Fatalf("after undo: doc %+v, viewer b %+v", q.docs["d"], q.viewers["b"])
	}
	// A deleted model frees its share.
	q.removed("d", "t1", []storage.ModelKey{{Type: "T", ID: "m"}})
	if q.docs["d"].bytes != 0 || q.viewers["a"].bytes != 0 {
		t.Fatalf("after delete: doc %+v, viewer a %+v", q.docs["d"], q.viewers["a"])
	}
}

func TestScratchWriteRate(t *testing.T) {
	now := time.Unix(1000, 0)
	q := newScratchQuotas(ScratchLimits{WritesPerSec: 10, WriteBurst: 20}, time.Hour)
	write := func(viewer string) error {
		_, err := q.admit("d", "t-"+viewer, viewer, []storage.Model{scratchModel("m", 10)}, now)
		return err
	}
	for i := range 20 {
		if err := write("fast"); err != nil {
			t.Fatalf("write %d within the burst: %v", i, err)
		}
	}
	refusedWith(t, write("fast"), "too many scratch-copy writes")
	if err := write("slow"); err != nil {
		t.Fatalf("another viewer: %v", err)
	}
	now = now.Add(time.Second) // ten more have refilled
	for i := range 10 {
		if err := write("fast"); err != nil {
			t.Fatalf("write %d after a second: %v", i, err)
		}
	}
	refusedWith(t, write("fast"), "too many scratch-copy writes")
}

func TestViewerKey(t *testing.T) {
	for ip, want := range map[string]string{
		"192.0.2.7":               "192.0.2.7",
		"::ffff:192.0.2.7":        "192.0.2.7",
		"2001:db8:1:2:3:4:5:6":    "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:4:5:6": "2001:db8:1:2::/64",
		"not an address":          "not an address",
	} {
		if got := viewerKey(ip); got != want {
			t.Errorf("viewerKey(%q) = %q, want %q", ip, got, want)
		}
	}
}
