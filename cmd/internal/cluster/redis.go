package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ManagedRedisPassword is the password bokeh-server made for its managed redis
// (StartRedis), read from the file it keeps in its data dir.
func (s *Server) ManagedRedisPassword(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(s.Opts.DataDir, "redis", "password"))
	if err != nil {
		tb.Fatalf("managed redis password: %v", err)
	}
	return strings.TrimRight(string(b), "\n")
}
