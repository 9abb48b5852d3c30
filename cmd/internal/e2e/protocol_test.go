// Package e2e holds the black-box tests: they start the real bokeh-server, ws-worker,
// forwarder and redis-server programs and drive them over HTTP and websockets.
package e2e

import (
	"testing"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
	"github.com/bokeh-go/bokeh-server/storage/redistest"
)

// backendServer starts bokeh-server (one auto-started worker) on a backend; for redis a real
// redis-server runs beside it.
func backendServer(t *testing.T, backend string, multiUser bool) *cluster.Server {
	t.Helper()
	o := cluster.ServerOptions{Backend: backend, MultiUser: multiUser}
	if backend == "redis" {
		o.RedisPort = redistest.Start(t, redistest.WithAOF()).Port
	}
	return cluster.StartServer(t, cluster.Build(t), o)
}

func target(s *cluster.Server, persistent bool) apitest.Target {
	tg := apitest.Target{
		Root: s.Root,
		Watch: func(tb testing.TB, topic, auth string) apitest.Watcher {
			return cluster.Watch(s.Root)(tb, topic, auth)
		},
	}
	if persistent {
		tg.Restart = func(tb testing.TB) { s.Restart(tb) }
	}
	return tg
}

// TestProtocolPerBackend replays the Python client's sequences (§7.1-§7.2) against the real
// binary on every backend, single-user and multi-user; shelve and redis also restart.
func TestProtocolPerBackend(t *testing.T) {
	for _, backend := range []string{"memory", "shelve", "redis"} {
		persistent := backend != "memory"
		t.Run(backend, func(t *testing.T) {
			t.Run("SingleUser", func(t *testing.T) {
				apitest.SingleUser(t, target(backendServer(t, backend, false), persistent))
			})
			t.Run("MultiUser", func(t *testing.T) {
				apitest.MultiUser(t, target(backendServer(t, backend, true), persistent))
			})
		})
	}
}
