package storage_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/storage"
)

// testDocExpiry: documents with an expiry are claimed once they are due, earliest first and
// only once; DeleteDoc removes the record, the models and the expiry; documents without
// an expiry are left alone; a persistent backend keeps the schedule across a reopen.
func testDocExpiry(t *testing.T, open factory, persistent bool) {
	in := open(t, long)
	var s storage.Store = in
	ctx := t.Context()
	t0 := time.Unix(1_800_000_000, 0)
	for i, id := range []string{"dA", "dB", "dC"} {
		put(t, s, storage.Scope{DocID: id}, model("Plot", "p", `{"id": "p"}`))
		if err := s.PutDoc(ctx, storage.Doc{DocID: id, Title: id}); err != nil {
			t.Fatal(err)
		}
		if id != "dC" {
			// dB is due before dA.
			if err := s.SetDocExpiry(ctx, id, t0.Add(time.Duration(2-i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(t, s, ovA1, model("Plot", "p", `{"moved": true}`))

	if ok, err := s.ExtendDocExpiry(ctx, "dC", t0); ok || err != nil {
		t.Errorf("ExtendDocExpiry of a document without expiry = %v, %v; want false", ok, err)
	}
	if ok, err := s.ExtendDocExpiry(ctx, "dA", t0.Add(3*time.Minute)); !ok || err != nil {
		t.Errorf("ExtendDocExpiry(dA) = %v, %v; want true", ok, err)
	}
	if persistent {
		s = in.reopen()
	}
	if due, err := s.ClaimExpiredDocs(ctx, t0, 10); err != nil || len(due) != 0 {
		t.Errorf("claim before anything is due = %v, %v", due, err)
	}
	// dA was extended past t0+2m; dB is due at t0+1m.
	due, err := s.ClaimExpiredDocs(ctx, t0.Add(150*time.Second), 10)
	if err != nil || !slices.Equal(due, []string{"dB"}) {
		t.Errorf("claim at t0+2.5m = %v, %v; want [dB]", due, err)
	}
	if due, err := s.ClaimExpiredDocs(ctx, t0.Add(150*time.Second), 10); err != nil || len(due) != 0 {
		t.Errorf("second claim = %v, %v; want nothing (claimed once)", due, err)
	}
	if err := s.SetDocExpiry(ctx, "dB", t0); err != nil {
		t.Fatal(err)
	}
	due, err = s.ClaimExpiredDocs(ctx, t0.Add(time.Hour), 1)
	if err != nil || !slices.Equal(due, []string{"dB"}) {
		t.Errorf("claim with limit 1 = %v, %v; want the earliest, [dB]", due, err)
	}

	if err := s.DeleteDoc(ctx, "dA"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Doc(ctx, "dA"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Doc(dA) after DeleteDoc: %v, want ErrNotFound", err)
	}
	wantModels(t, s, docA)
	if due, err := s.ClaimExpiredDocs(ctx, t0.Add(time.Hour), 10); err != nil || len(due) != 0 {
		t.Errorf("claim after DeleteDoc = %v, %v; want nothing (the expiry went with it)", due, err)
	}
	// The others are untouched.
	if _, err := s.Doc(ctx, "dC"); err != nil {
		t.Errorf("Doc(dC): %v", err)
	}
	wantModels(t, s, docB, model("Plot", "p", `{"id": "p"}`))
	if err := s.DeleteDoc(ctx, "never-there"); err != nil {
		t.Errorf("DeleteDoc of an unknown document: %v", err)
	}
	if err := s.SetDocExpiry(ctx, "", t0); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("SetDocExpiry of an empty docid: %v, want ErrInvalidKey", err)
	}
}
