package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Backend names, as given to --backend.
const (
	BackendMemory = "memory"
	BackendShelve = "shelve"
	BackendRedis  = "redis"
)

// ShelveFile is the name of the shelve backend's data file inside Config.DataDir.
const ShelveFile = "bokeh.db"

// Config selects and configures a backend.
type Config struct {
	Backend string // BackendMemory, BackendShelve or BackendRedis
	// DataDir holds the shelve file (created if missing); empty means the current
	// directory, where the original kept its shelve files.
	DataDir string
	Redis   RedisConfig
	// OverlayTTL is how long an overlay outlives its last write; DefaultOverlayTTL if <= 0.
	// It applies to Redis too unless Redis.OverlayTTL is set.
	OverlayTTL time.Duration
}

// Open opens the configured backend.
func Open(ctx context.Context, cfg Config) (Store, error) {
	switch cfg.Backend {
	case BackendMemory:
		return NewMemory(cfg.OverlayTTL), nil
	case BackendShelve:
		if cfg.DataDir != "" {
			if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
				return nil, fmt.Errorf("storage: data dir: %w", err)
			}
		}
		s, err := OpenShelve(filepath.Join(cfg.DataDir, ShelveFile), cfg.OverlayTTL)
		if err != nil {
			return nil, err // not s: a nil *Shelve in a Store would not compare equal to nil
		}
		return s, nil
	case BackendRedis:
		rc := cfg.Redis
		if rc.OverlayTTL <= 0 {
			rc.OverlayTTL = cfg.OverlayTTL
		}
		r, err := NewRedis(ctx, rc)
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, fmt.Errorf("storage: unknown backend %q (valid: %s, %s, %s)",
		cfg.Backend, BackendMemory, BackendShelve, BackendRedis)
}
