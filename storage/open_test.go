package storage_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/storage"
	"github.com/bokeh-go/bokeh-server/storage/redistest"
)

func TestOpen(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "new", "data")
	s, err := storage.Open(ctx, storage.Config{Backend: storage.BackendShelve, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, storage.ShelveFile)); err != nil {
		t.Errorf("shelve file not created in the data dir: %v", err)
	}

	srv := redistest.Start(t)
	cfg := storage.Config{Backend: storage.BackendRedis, Redis: storage.RedisConfig{Addr: srv.Addr}}
	r, err := storage.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	m, err := storage.Open(ctx, storage.Config{Backend: storage.BackendMemory})
	if err != nil || m == nil {
		t.Fatalf("Open(memory) = %v, %v", m, err)
	}

	for _, name := range []string{"", "bolt", "Redis"} {
		s, err := storage.Open(ctx, storage.Config{Backend: name})
		if err == nil || s != nil || !strings.Contains(err.Error(), "memory, shelve, redis") {
			t.Errorf("Open(%q) = %v, %v; want an error naming the backends", name, s, err)
		}
	}
	srv.Kill()
	if s, err := storage.Open(ctx, cfg); s != nil || !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Open(redis down) = %v, %v; want nil, ErrUnavailable", s, err)
	}
}

// TestShelveLocked: a second server on the same data file gets a clear error, not a hang.
func TestShelveLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bokeh.db")
	first := openShelve(t, path, time.Hour)
	defer first.Close()
	s, err := storage.OpenShelve(path, time.Hour)
	if err == nil {
		s.Close()
		t.Fatal("second OpenShelve of an open file succeeded")
	}
	if !strings.Contains(err.Error(), "in use by another bokeh-server") || !strings.Contains(err.Error(), path) {
		t.Errorf("second OpenShelve: %v; want it to say the file is in use", err)
	}
	if err := first.Ping(t.Context()); err != nil {
		t.Errorf("Ping of the open store: %v", err)
	}
	first.Close()
	if err := first.Ping(t.Context()); err == nil {
		t.Error("Ping after Close succeeded")
	}
}
