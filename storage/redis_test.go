package storage_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/bokeh-go/bokeh-server/storage"
	"github.com/bokeh-go/bokeh-server/storage/redistest"
)

// TestRedisLayout checks what we write is exactly the original's layout (PROTOCOL.md §4),
// read back through a plain client as redis-cli would show it.
func TestRedisLayout(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, srv.Addr, time.Hour)
	ctx := t.Context()
	attrs := `{"id": "p1", "doc": "d1", "x": NaN, "n": 123456789012345678901234567890}`
	put(t, s, storage.Scope{DocID: "d1"}, model("Plot", "p1", attrs))
	doc := storage.Doc{DocID: "d1", Title: "t", RWUsers: []string{"alice"},
		PlotContextRef: storage.Ref{Type: "PlotContext", ID: "pc"}, APIKey: "k", ReadOnlyAPIKey: "rk"}
	if err := s.PutDoc(ctx, doc); err != nil {
		t.Fatal(err)
	}
	user := storage.User{Username: "alice", PassHash: "sha1$abcdefgh$00", APIKey: "ak"}
	if err := s.CreateUser(ctx, user); err != nil {
		t.Fatal(err)
	}

	db2, db3 := rawClient(t, srv.Addr, 2), rawClient(t, srv.Addr, 3)
	if got, err := db2.Get(ctx, "bbmodel:Plot:d1:p1").Result(); err != nil || got != attrs {
		t.Errorf("db2 GET bbmodel:Plot:d1:p1 = %q, %v; want %q", got, err, attrs)
	}
	if got, err := db2.SMembers(ctx, "doc:d1").Result(); err != nil || !reflect.DeepEqual(got, []string{"bbmodel:Plot:d1:p1"}) {
		t.Errorf("db2 SMEMBERS doc:d1 = %q, %v", got, err)
	}
	if got, err := db2.Keys(ctx, "*").Result(); err != nil || len(got) != 2 {
		t.Errorf("db2 holds %q, %v; want only the bbmodel key and the doc set", got, err)
	}
	wantDoc, _ := json.Marshal(doc)
	if got, err := db3.Get(ctx, "model:doc:d1").Result(); err != nil || got != string(wantDoc) {
		t.Errorf("db3 GET model:doc:d1 = %q, %v; want %q", got, err, wantDoc)
	}
	wantUser, _ := json.Marshal(user)
	if got, err := db3.Get(ctx, "model:user:alice").Result(); err != nil || got != string(wantUser) {
		t.Errorf("db3 GET model:user:alice = %q, %v; want %q", got, err, wantUser)
	}
	if !strings.Contains(string(wantUser), `"docs":[]`) {
		t.Errorf("user JSON %s: want an empty docs list, not null", wantUser)
	}

	// Overlays are our own namespace: one hash with a TTL, beside the original's keys.
	put(t, s, storage.Scope{DocID: "d1", Temp: "temporary-AB"}, model("Plot", "p1", `{"o": 1}`))
	if got, err := db2.HGetAll(ctx, "overlay:d1:temporary-AB").Result(); err != nil ||
		!reflect.DeepEqual(got, map[string]string{"Plot:p1": `{"o": 1}`}) {
		t.Errorf("db2 HGETALL overlay:d1:temporary-AB = %q, %v", got, err)
	}
	if ttl, err := db2.PTTL(ctx, "overlay:d1:temporary-AB").Result(); err != nil || ttl <= 0 || ttl > time.Hour {
		t.Errorf("overlay PTTL = %v, %v; want (0, 1h]", ttl, err)
	}

	if err := s.DeleteModels(ctx, storage.Scope{DocID: "d1"}, []storage.ModelKey{{Type: "Plot", ID: "p1"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := db2.Exists(ctx, "bbmodel:Plot:d1:p1", "doc:d1").Result(); err != nil || n != 0 {
		t.Errorf("after delete %d of the doc's keys remain (%v); want SREM + DEL of both", n, err)
	}
}

// TestRedisReadsOriginalData feeds data as the Python server wrote it (json.dumps spacing,
// bare docid strings in a user's docs, stray set members) and reads it back.
func TestRedisReadsOriginalData(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	db2, db3 := rawClient(t, srv.Addr, 2), rawClient(t, srv.Addr, 3)
	pc := `{"children": [{"type": "Plot", "id": "p1"}], "tags": [], "id": "pc1", "doc": "d-1"}`
	plot := `{"id": "p1", "doc": "d-1", "x_range": {"type": "Range1d", "id": "r1"}, "v": NaN}`
	must(t, db2.MSet(ctx, "bbmodel:PlotContext:d-1:pc1", pc, "bbmodel:Plot:d-1:p1", plot).Err())
	must(t, db2.SAdd(ctx, "doc:d-1", "bbmodel:PlotContext:d-1:pc1", "bbmodel:Plot:d-1:p1",
		"bbmodel:Plot:d-1:gone", "not-a-model-key").Err())
	must(t, db3.Set(ctx, "model:doc:d-1", `{"docid": "d-1", "title": "first", "rw_users": ["alice"], `+
		`"r_users": [], "plot_context_ref": {"type": "PlotContext", "id": "pc1"}, `+
		`"apikey": "0f1e", "readonlyapikey": "a2b3", "published": false}`, 0).Err())
	must(t, db3.Set(ctx, "model:user:alice", `{"username": "alice", `+
		`"passhash": "sha1$abcdefgh$5c7a3e0e1bb7bc1ea0b9da66a0e4bb2a9a70b5f6", "apikey": "ak", `+
		`"docs": ["d-1", {"docid": "d-2", "title": "second"}]}`, 0).Err())

	s := newRedis(t, srv.Addr, time.Hour)
	wantModels(t, s, storage.Scope{DocID: "d-1"}, model("PlotContext", "pc1", pc), model("Plot", "p1", plot))
	wantDoc := storage.Doc{DocID: "d-1", Title: "first", RWUsers: []string{"alice"}, RUsers: []string{},
		PlotContextRef: storage.Ref{Type: "PlotContext", ID: "pc1"}, APIKey: "0f1e", ReadOnlyAPIKey: "a2b3"}
	if got, err := s.Doc(ctx, "d-1"); err != nil || !reflect.DeepEqual(got, wantDoc) {
		t.Errorf("Doc = %+v, %v; want %+v", got, err, wantDoc)
	}
	wantUser := storage.User{Username: "alice", PassHash: "sha1$abcdefgh$5c7a3e0e1bb7bc1ea0b9da66a0e4bb2a9a70b5f6",
		APIKey: "ak", Docs: []storage.DocEntry{{DocID: "d-1"}, {DocID: "d-2", Title: "second"}}}
	if got, err := s.User(ctx, "alice"); err != nil || !reflect.DeepEqual(got, wantUser) {
		t.Errorf("User = %+v, %v; want %+v", got, err, wantUser)
	}

	// A record that is not JSON is an error, but not "not found" nor "unavailable".
	must(t, db3.Set(ctx, "model:doc:broken", `{"docid": `, 0).Err())
	if _, err := s.Doc(ctx, "broken"); err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Doc(broken JSON) = %v; want a decode error", err)
	}
	// So is a key of the wrong type (set instead of string).
	if _, err := rawClient(t, srv.Addr, 3).SAdd(ctx, "model:user:weird", "x").Result(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.User(ctx, "weird"); err == nil || errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("User(wrong type) = %v; want a WRONGTYPE error", err)
	}
}

// TestRedisUnavailable: with redis dead, every operation fails as ErrUnavailable (not
// hanging), and the store recovers by itself once redis is back.
func TestRedisUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, srv.Addr, time.Hour)
	srv.Kill()

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	scope, key := storage.Scope{DocID: "d"}, storage.ModelKey{Type: "Plot", ID: "p"}
	ops := map[string]func() error{
		"Models":    func() error { _, err := s.Models(ctx, scope); return err },
		"GetModels": func() error { _, err := s.GetModels(ctx, scope, []storage.ModelKey{key}); return err },
		"PutModels": func() error { return s.PutModels(ctx, scope, []storage.Model{model("Plot", "p", "{}")}) },
		"PutOverlay": func() error {
			return s.PutModels(ctx, storage.Scope{DocID: "d", Temp: "t"}, []storage.Model{model("Plot", "p", "{}")})
		},
		"DeleteModels": func() error { return s.DeleteModels(ctx, scope, []storage.ModelKey{key}) },
		"Doc":          func() error { _, err := s.Doc(ctx, "d"); return err },
		"PutDoc":       func() error { return s.PutDoc(ctx, storage.Doc{DocID: "d"}) },
		"User":         func() error { _, err := s.User(ctx, "u"); return err },
		"PutUser":      func() error { return s.PutUser(ctx, storage.User{Username: "u"}) },
		"CreateUser":   func() error { return s.CreateUser(ctx, storage.User{Username: "u"}) },
		"Ping":         func() error { return s.Ping(ctx) },
	}
	for name, op := range ops {
		err := op()
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s with redis down = %v; want ErrUnavailable", name, err)
		} else if !strings.Contains(err.Error(), srv.Addr) {
			t.Errorf("%s: error %q does not name the redis address", name, err)
		}
	}
	t.Logf("e.g. PutModels: %v", ops["PutModels"]())
	if _, err := storage.NewRedis(ctx, storage.RedisConfig{Addr: srv.Addr}); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("NewRedis with redis down = %v; want ErrUnavailable", err)
	}

	srv.Restart(t)
	for {
		err := s.Ping(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("store did not reconnect after redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	put(t, s, scope, model("Plot", "p", "{}"))
}

// TestRedisHung: a redis that accepts connections but never answers (stopped, swapping,
// network black hole) fails requests as ErrUnavailable once IOTimeout passes.
func TestRedisHung(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cfg := storage.RedisConfig{Addr: l.Addr().String(), DialTimeout: 200 * time.Millisecond, IOTimeout: 200 * time.Millisecond}
	if _, err := storage.NewRedis(ctx, cfg); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("NewRedis against a hung server = %v; want ErrUnavailable", err)
	}
}

// TestRedisAOFRestart: with the append-only file on, data written before a clean stop is
// there after the restart.
func TestRedisAOFRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.WithAOF())
	s := newRedis(t, srv.Addr, time.Hour)
	put(t, s, docA, model("Plot", "p1", oddAttrs))
	srv.Stop()
	srv.Restart(t)
	wantModels(t, newRedis(t, srv.Addr, time.Hour), docA, model("Plot", "p1", oddAttrs))
}

// TestRedisEmptyWritesSendNothing: redis rejects empty MSET/SADD/HSET/HDEL/MGET, so empty
// calls must not reach it at all.
func TestRedisEmptyWritesSendNothing(t *testing.T) {
	mr := miniredis.RunT(t)
	s := newRedis(t, mr.Addr(), time.Hour)
	ctx := t.Context()
	before := mr.CommandCount()
	for _, scope := range []storage.Scope{docA, ovA1} {
		must(t, s.PutModels(ctx, scope, nil))
		must(t, s.DeleteModels(ctx, scope, nil))
		must(t, s.DeleteModels(ctx, scope, []storage.ModelKey{{Type: "bad:type", ID: "x"}}))
		if _, err := s.GetModels(ctx, scope, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := mr.CommandCount() - before; n != 0 {
		t.Errorf("empty calls sent %d commands to redis", n)
	}
}

func TestRedisConfigFromURL(t *testing.T) {
	good := []struct {
		url                  string
		addr, user, password string
		tls                  bool
	}{
		{"redis://127.0.0.1:7001", "127.0.0.1:7001", "", "", false},
		{"redis://example.com", "example.com:6379", "", "", false},
		{"redis://example.com/", "example.com:6379", "", "", false},
		{"redis://:s%40cret@h:1", "h:1", "", "s@cret", false},
		{"rediss://bokeh:pw@h:6380", "h:6380", "bokeh", "pw", true},
		{"redis://[::1]:7001", "[::1]:7001", "", "", false},
	}
	for _, c := range good {
		cfg, err := storage.RedisConfigFromURL(c.url)
		if err != nil {
			t.Errorf("RedisConfigFromURL(%q): %v", c.url, err)
			continue
		}
		if cfg.Addr != c.addr || cfg.Username != c.user || cfg.Password != c.password || (cfg.TLS != nil) != c.tls {
			t.Errorf("RedisConfigFromURL(%q) = %+v", c.url, cfg)
		}
		if c.tls && cfg.TLS.ServerName != "h" {
			t.Errorf("RedisConfigFromURL(%q): TLS server name %q, want h", c.url, cfg.TLS.ServerName)
		}
	}
	bad := map[string]string{
		"redis://h:1/2":          "database",
		"redis://h:1/0":          "database",
		"http://h:1":             "scheme",
		"redis://":               "host",
		"redis://h:1?db=2":       "query",
		"redis://u:pw@h:1/3":     "database",
		"redis://u:pw@h:1 /\x7f": "",
		"unix:///tmp/redis.sock": "scheme",
	}
	for url, want := range bad {
		_, err := storage.RedisConfigFromURL(url)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("RedisConfigFromURL(%q) = %v; want an error about %s", url, err, want)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("RedisConfigFromURL(%q): error %q shows the password", url, err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
