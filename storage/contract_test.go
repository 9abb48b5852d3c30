package storage_test

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/storage"
)

// runContract is the behaviour every backend must share (backends_test.go runs it);
// persistent backends (shelve, redis) must also keep everything across a reopen.
func runContract(t *testing.T, persistent bool, open factory) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, open) })
	t.Run("Overwrite", func(t *testing.T) { testOverwrite(t, open) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, open) })
	t.Run("ScopesIsolated", func(t *testing.T) { testScopesIsolated(t, open) })
	t.Run("EmptyWrites", func(t *testing.T) { testEmptyWrites(t, open) })
	t.Run("InvalidKeys", func(t *testing.T) { testInvalidKeys(t, open) })
	t.Run("OverlayExpiry", func(t *testing.T) { testOverlayExpiry(t, open) })
	t.Run("Records", func(t *testing.T) { testRecords(t, open) })
	t.Run("CreateUser", func(t *testing.T) { testCreateUser(t, open) })
	t.Run("CreateUserConcurrent", func(t *testing.T) { testCreateUserConcurrent(t, open) })
	t.Run("DocExpiry", func(t *testing.T) { testDocExpiry(t, open, persistent) })
	if persistent {
		t.Run("Persistence", func(t *testing.T) { testPersistence(t, open) })
	}
}

const long = time.Hour // an overlay TTL no test outlives

var (
	docA = storage.Scope{DocID: "dA"}
	docB = storage.Scope{DocID: "dB"}
	ovA1 = storage.Scope{DocID: "dA", Temp: "temporary-1"}
	ovA2 = storage.Scope{DocID: "dA", Temp: "temporary-2"}
	// ovAB's temp is docB's docid: it must not alias docB.
	ovAB = storage.Scope{DocID: "dA", Temp: "dB"}
)

// oddAttrs holds what a float64 round trip would lose: Python's bare NaN/Infinity tokens,
// digits beyond float precision, escapes and non-ASCII text.
const oddAttrs = `{"id": "p1", "doc": "dA", "x": NaN, "y": [Infinity, -Infinity, 1e400], ` +
	`"big": 123456789012345678901234567890, "f": 0.100000000000000000000000000001, ` +
	`"s": "caf\u00e9 \"q\" \\ ☃", "ref": {"type": "Range1d", "id": "r1"}}`

func model(typ, id, attrs string) storage.Model {
	return storage.Model{Type: typ, ID: id, Attrs: []byte(attrs)}
}

// asMap turns models into "type:id" → attrs text, failing on duplicates.
func asMap(t *testing.T, ms []storage.Model) map[string]string {
	t.Helper()
	out := make(map[string]string, len(ms))
	for _, m := range ms {
		k := m.Type + ":" + m.ID
		if _, dup := out[k]; dup {
			t.Errorf("model %s returned twice", k)
		}
		out[k] = string(m.Attrs)
	}
	return out
}

func wantModels(t *testing.T, s storage.Store, scope storage.Scope, want ...storage.Model) {
	t.Helper()
	got, err := s.Models(t.Context(), scope)
	if err != nil {
		t.Fatalf("Models(%s): %v", scope, err)
	}
	if g, w := asMap(t, got), asMap(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("Models(%s):\n got %q\nwant %q", scope, g, w)
	}
}

func put(t *testing.T, s storage.Store, scope storage.Scope, ms ...storage.Model) {
	t.Helper()
	if err := s.PutModels(t.Context(), scope, ms); err != nil {
		t.Fatalf("PutModels(%s): %v", scope, err)
	}
}

func testRoundTrip(t *testing.T, open factory) {
	s := open(t, long)
	ms := []storage.Model{
		model("Plot", "p1", oddAttrs),
		model("ColumnDataSource", "c1", `{"id":"c1","doc":"dA","data":{"x":[1,2.50,3e2]}}`),
		model("PlotContext", "pc", `{"children": [], "tags": [], "id": "pc", "doc": "dA"}`),
	}
	put(t, s, docA, ms...)
	wantModels(t, s, docA, ms...)

	got, err := s.GetModels(t.Context(), docA, []storage.ModelKey{
		{Type: "Plot", ID: "p1"},
		{Type: "Plot", ID: "missing"},
		{Type: "Missing", ID: "c1"},
		{Type: "PlotContext", ID: "pc"},
		{Type: "Bad:Type", ID: "x"},
		{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if g, w := asMap(t, got), asMap(t, []storage.Model{ms[0], ms[2]}); !reflect.DeepEqual(g, w) {
		t.Errorf("GetModels:\n got %q\nwant %q", g, w)
	}
	if got, err := s.GetModels(t.Context(), docA, nil); err != nil || len(got) != 0 {
		t.Errorf("GetModels(no keys) = %v, %v; want nothing", got, err)
	}
	wantModels(t, s, docB) // an unknown doc is empty, not an error
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testOverwrite(t *testing.T, open factory) {
	s := open(t, long)
	for _, scope := range []storage.Scope{docA, ovA1} {
		put(t, s, scope, model("Plot", "p1", `{"v": 1}`), model("Plot", "p2", `{"v": 2}`))
		put(t, s, scope, model("Plot", "p1", `{"v": 10}`))
		wantModels(t, s, scope, model("Plot", "p1", `{"v": 10}`), model("Plot", "p2", `{"v": 2}`))
		// The same key twice in one write: the last one wins, as with MSET.
		put(t, s, scope, model("Plot", "p2", `{"v": 20}`), model("Plot", "p2", `{"v": 21}`))
		wantModels(t, s, scope, model("Plot", "p1", `{"v": 10}`), model("Plot", "p2", `{"v": 21}`))
	}
}

func testDelete(t *testing.T, open factory) {
	s := open(t, long)
	ctx := t.Context()
	for _, scope := range []storage.Scope{docA, ovA1} {
		put(t, s, scope, model("Plot", "p1", `{}`), model("Plot", "p2", `{}`), model("Axis", "a1", `{}`))
		err := s.DeleteModels(ctx, scope, []storage.ModelKey{
			{Type: "Plot", ID: "p1"}, {Type: "Plot", ID: "nope"}, {Type: "a:b", ID: "c"},
		})
		if err != nil {
			t.Fatalf("DeleteModels(%s): %v", scope, err)
		}
		wantModels(t, s, scope, model("Plot", "p2", `{}`), model("Axis", "a1", `{}`))
		if err := s.DeleteModels(ctx, scope, []storage.ModelKey{{Type: "Plot", ID: "p2"}, {Type: "Axis", ID: "a1"}}); err != nil {
			t.Fatal(err)
		}
		wantModels(t, s, scope)
		// The scope works again after being emptied.
		put(t, s, scope, model("Plot", "p3", `{}`))
		wantModels(t, s, scope, model("Plot", "p3", `{}`))
	}
	if err := s.DeleteModels(ctx, docB, []storage.ModelKey{{Type: "Plot", ID: "p1"}}); err != nil {
		t.Errorf("DeleteModels on an empty doc: %v", err)
	}
}

func testScopesIsolated(t *testing.T, open factory) {
	s := open(t, long)
	scopes := []storage.Scope{docA, docB, ovA1, ovA2, ovAB, {DocID: "dB", Temp: "dA"}}
	for _, scope := range scopes {
		put(t, s, scope, model("Plot", "p1", `{"in": "`+scope.String()+`"}`),
			model("Only", scope.DocID+scope.Temp, `{}`))
	}
	for _, scope := range scopes {
		wantModels(t, s, scope, model("Plot", "p1", `{"in": "`+scope.String()+`"}`),
			model("Only", scope.DocID+scope.Temp, `{}`))
	}
	// Deleting through the overlay named like docB leaves docB alone, and vice versa.
	if err := s.DeleteModels(t.Context(), ovAB, []storage.ModelKey{{Type: "Plot", ID: "p1"}}); err != nil {
		t.Fatal(err)
	}
	wantModels(t, s, ovAB, model("Only", "dAdB", `{}`))
	wantModels(t, s, docB, model("Plot", "p1", `{"in": "doc dB"}`), model("Only", "dB", `{}`))
	if err := s.DeleteModels(t.Context(), docA, []storage.ModelKey{{Type: "Plot", ID: "p1"}}); err != nil {
		t.Fatal(err)
	}
	wantModels(t, s, ovA1, model("Plot", "p1", `{"in": "overlay dA/temporary-1"}`),
		model("Only", "dAtemporary-1", `{}`))
}

func testEmptyWrites(t *testing.T, open factory) {
	s := open(t, long)
	for _, scope := range []storage.Scope{docA, ovA1} {
		if err := s.PutModels(t.Context(), scope, nil); err != nil {
			t.Errorf("PutModels(%s, nil): %v", scope, err)
		}
		if err := s.PutModels(t.Context(), scope, []storage.Model{}); err != nil {
			t.Errorf("PutModels(%s, []): %v", scope, err)
		}
		if err := s.DeleteModels(t.Context(), scope, nil); err != nil {
			t.Errorf("DeleteModels(%s, nil): %v", scope, err)
		}
		wantModels(t, s, scope)
	}
}

func testInvalidKeys(t *testing.T, open factory) {
	s := open(t, long)
	ctx := t.Context()
	bad := []struct {
		scope  storage.Scope
		models []storage.Model
	}{
		{docA, []storage.Model{model("Plot", "ok", `{}`), model("Plot:x", "p", `{}`)}},
		{docA, []storage.Model{model("Plot", "a:b", `{}`)}},
		{docA, []storage.Model{model("", "p", `{}`)}},
		{docA, []storage.Model{model("Plot", "", `{}`)}},
		{storage.Scope{}, []storage.Model{model("Plot", "p", `{}`)}},
		{storage.Scope{DocID: "dA", Temp: "t:1"}, []storage.Model{model("Plot", "p", `{}`)}},
	}
	for _, c := range bad {
		if err := s.PutModels(ctx, c.scope, c.models); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("PutModels(%q, %q) = %v, want ErrInvalidKey", c.scope, asMap(t, c.models), err)
		}
	}
	wantModels(t, s, docA) // the valid model of the first write was not stored either
	badScope := storage.Scope{DocID: "dA", Temp: "t:1"}
	if _, err := s.Models(ctx, badScope); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Models(bad temp) = %v, want ErrInvalidKey", err)
	}
	if _, err := s.GetModels(ctx, storage.Scope{}, nil); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("GetModels(empty docid) = %v, want ErrInvalidKey", err)
	}
	if err := s.PutDoc(ctx, storage.Doc{}); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("PutDoc(no docid) = %v, want ErrInvalidKey", err)
	}
	if err := s.CreateUser(ctx, storage.User{}); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("CreateUser(no username) = %v, want ErrInvalidKey", err)
	}
}

func testOverlayExpiry(t *testing.T, open factory) {
	const ttl = time.Second
	in := open(t, ttl)
	p1, p2 := model("Plot", "p1", `{"v": 1}`), model("Plot", "p2", `{"v": 2}`)
	put(t, in, docA, p1)
	// A real clock can overrun a sleep; an attempt whose timing proves nothing is repeated
	// on a fresh overlay instead of failing.
	for attempt := 1; ; attempt++ {
		scope := storage.Scope{DocID: "dA", Temp: fmt.Sprintf("temporary-%d", attempt)}
		put(t, in, scope, p1)
		firstDone := in.now()
		in.advance(600 * time.Millisecond)
		refreshStart := in.now()
		put(t, in, scope, p2) // refreshes the whole overlay's expiry, p1 included
		in.advance(600 * time.Millisecond)
		readStart := in.now()
		got, err := in.Models(t.Context(), scope)
		if err != nil {
			t.Fatal(err)
		}
		readEnd := in.now()
		// p1 alone would have expired by readStart; the refresh must keep both until
		// refreshStart+ttl.
		if readStart.Sub(firstDone) <= ttl || readEnd.Sub(refreshStart) >= ttl {
			if attempt == 5 {
				t.Fatal("timing was inconclusive 5 times: machine too slow for this test")
			}
			t.Logf("attempt %d: inconclusive timing, retrying", attempt)
			continue
		}
		if g, w := asMap(t, got), asMap(t, []storage.Model{p1, p2}); !reflect.DeepEqual(g, w) {
			t.Errorf("refreshed overlay holds %q, want %q", g, w)
		}
		in.advance(ttl + 50*time.Millisecond)
		wantModels(t, in, scope)
		if got, err := in.GetModels(t.Context(), scope, []storage.ModelKey{p1.Key()}); err != nil || len(got) != 0 {
			t.Errorf("GetModels(expired overlay) = %q, %v; want nothing", asMap(t, got), err)
		}
		// Writing to an expired overlay starts a new one: old models do not come back.
		put(t, in, scope, p2)
		wantModels(t, in, scope, p2)
		break
	}
	wantModels(t, in, docA, p1) // documents never expire
}

func testRecords(t *testing.T, open factory) {
	s := open(t, long)
	ctx := t.Context()
	doc := storage.Doc{
		DocID: "d1", Title: "Ti\"tle ☃", RWUsers: []string{"alice"},
		PlotContextRef: storage.Ref{Type: "PlotContext", ID: "pc1"},
		APIKey:         "k1", ReadOnlyAPIKey: "rk1", Published: true,
	}
	if err := s.PutDoc(ctx, doc); err != nil {
		t.Fatal(err)
	}
	doc.RUsers = []string{} // nil lists are stored as [] and read back empty
	if got, err := s.Doc(ctx, "d1"); err != nil || !reflect.DeepEqual(got, doc) {
		t.Errorf("Doc = %+v, %v; want %+v", got, err, doc)
	}
	doc.Title, doc.Published = "new", false
	if err := s.PutDoc(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Doc(ctx, "d1"); err != nil || !reflect.DeepEqual(got, doc) {
		t.Errorf("Doc after replace = %+v, %v; want %+v", got, err, doc)
	}
	if _, err := s.Doc(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Doc(missing) = %v, want ErrNotFound", err)
	}

	user := storage.User{Username: "alice", PassHash: "sha1$abcdefgh$00ff", APIKey: "ak",
		Docs: []storage.DocEntry{{DocID: "d1", Title: "new"}}}
	if err := s.PutUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	if got, err := s.User(ctx, "alice"); err != nil || !reflect.DeepEqual(got, user) {
		t.Errorf("User = %+v, %v; want %+v", got, err, user)
	}
	if _, err := s.User(ctx, "bob"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("User(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.User(ctx, "d1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("User named like a docid = %v, want ErrNotFound (separate namespaces)", err)
	}
}

func testCreateUser(t *testing.T, open factory) {
	s := open(t, long)
	ctx := t.Context()
	first := storage.User{Username: "bob", PassHash: "h1", APIKey: "k1", Docs: []storage.DocEntry{}}
	if err := s.CreateUser(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, storage.User{Username: "bob", APIKey: "k2"}); !errors.Is(err, storage.ErrExists) {
		t.Errorf("second CreateUser = %v, want ErrExists", err)
	}
	if got, err := s.User(ctx, "bob"); err != nil || !reflect.DeepEqual(got, first) {
		t.Errorf("User after failed create = %+v, %v; want %+v", got, err, first)
	}
}

func testCreateUserConcurrent(t *testing.T, open factory) {
	s := open(t, long)
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.CreateUser(t.Context(), storage.User{Username: "carol", APIKey: fmt.Sprint(i)})
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Errorf("creators %d and %d both won", winner, i)
		case !errors.Is(err, storage.ErrExists):
			t.Errorf("creator %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no creator won")
	}
	if got, err := s.User(t.Context(), "carol"); err != nil || got.APIKey != fmt.Sprint(winner) {
		t.Errorf("stored user = %+v, %v; want the winner's (apikey %d)", got, err, winner)
	}
}

func testPersistence(t *testing.T, open factory) {
	in := open(t, long)
	if in.reopen == nil {
		t.Fatal("a persistent backend's factory must set reopen")
	}
	ctx := t.Context()
	p := model("Plot", "p1", oddAttrs)
	put(t, in, docA, p)
	put(t, in, ovA1, model("Plot", "p1", `{"moved": true}`))
	doc := storage.Doc{DocID: "dA", Title: "t", RWUsers: []string{"u"}, RUsers: []string{}}
	user := storage.User{Username: "u", APIKey: "k", Docs: []storage.DocEntry{{DocID: "dA", Title: "t"}}}
	if err := in.PutDoc(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if err := in.CreateUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	s := in.reopen()
	wantModels(t, s, docA, p)
	wantModels(t, s, ovA1, model("Plot", "p1", `{"moved": true}`))
	if got, err := s.Doc(ctx, "dA"); err != nil || !reflect.DeepEqual(got, doc) {
		t.Errorf("Doc after reopen = %+v, %v", got, err)
	}
	if got, err := s.User(ctx, "u"); err != nil || !reflect.DeepEqual(got, user) {
		t.Errorf("User after reopen = %+v, %v", got, err)
	}
	if err := s.CreateUser(ctx, user); !errors.Is(err, storage.ErrExists) {
		t.Errorf("CreateUser after reopen = %v, want ErrExists", err)
	}
}
