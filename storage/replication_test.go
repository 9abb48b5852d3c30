package storage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/storage"
	"github.com/bokeh-go/bokeh-server/storage/redistest"
)

// Replicated redis: WAIT for replicas, and masters found through Redis Sentinel. The
// failover itself, under a stream of writes through the real server, is in
// cmd/internal/e2e/sentinel_test.go.

const replicationPassword = "replication-test-pw"

// TestRedisWaitReplicas: with WaitReplicas, a write returns only once the replica has it;
// while the replica cannot confirm it, the write fails as ErrUnavailable after WaitTimeout,
// complete on the master.
func TestRedisWaitReplicas(t *testing.T) {
	master := redistest.Start(t, redistest.WithPassword(replicationPassword))
	replica := redistest.Start(t, redistest.WithPassword(replicationPassword), redistest.WithReplicaOf(master))
	redistest.WaitSynced(t, master, 1)
	ctx := t.Context()
	s, err := storage.NewRedis(ctx, storage.RedisConfig{Addr: master.Addr, Password: replicationPassword,
		WaitReplicas: 1, WaitTimeout: 5 * time.Second, OverlayTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	onReplica := replica.Client(2)
	defer onReplica.Close()
	records := replica.Client(3)
	defer records.Close()

	// Every kind of acknowledged write is on the replica the moment it returns.
	for i := range 20 {
		put(t, s, docA, model("Plot", "p1", fmt.Sprintf(`{"i": %d}`, i)))
		if got, err := onReplica.Get(ctx, "bbmodel:Plot:dA:p1").Result(); err != nil || got != fmt.Sprintf(`{"i": %d}`, i) {
			t.Fatalf("write %d acknowledged, but the replica holds %q (%v)", i, got, err)
		}
	}
	put(t, s, ovA1, model("Plot", "p1", `{"o": 1}`))
	must(t, s.DeleteModels(ctx, docA, []storage.ModelKey{{Type: "Plot", ID: "p1"}}))
	must(t, s.PutDoc(ctx, storage.Doc{DocID: "dA", Title: "t"}))
	must(t, s.CreateUser(ctx, storage.User{Username: "alice", APIKey: "k"}))
	must(t, s.SetDocExpiry(ctx, "dA", time.Now().Add(time.Hour)))
	if n, err := onReplica.Exists(ctx, "bbmodel:Plot:dA:p1", "doc:dA").Result(); err != nil || n != 0 {
		t.Errorf("acknowledged delete: %d keys still on the replica (%v)", n, err)
	}
	if n, err := onReplica.Exists(ctx, "overlay:dA:temporary-1").Result(); err != nil || n != 1 {
		t.Errorf("acknowledged overlay write not on the replica (%d, %v)", n, err)
	}
	if n, err := records.Exists(ctx, "model:doc:dA", "model:user:alice", "bokeh-go:doc-expiry").Result(); err != nil || n != 3 {
		t.Errorf("acknowledged records: %d of 3 on the replica (%v)", n, err)
	}

	// A stopped replica confirms nothing: the write is refused, whole on the master.
	if err := syscall.Kill(replica.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = syscall.Kill(replica.Pid(), syscall.SIGCONT)
		}
	}()
	quick, err := storage.NewRedis(ctx, storage.RedisConfig{Addr: master.Addr, Password: replicationPassword,
		WaitReplicas: 1, WaitTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer quick.Close()
	err = quick.PutModels(ctx, docA, []storage.Model{model("Plot", "p2", `{"n": 2}`), model("Plot", "p3", `{"n": 3}`)})
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1") {
		t.Fatalf("write with the replica stopped = %v; want ErrUnavailable naming 0 of 1 replicas", err)
	}
	t.Logf("refused: %v", err)
	onMaster := master.Client(2)
	defer onMaster.Close()
	if n, err := onMaster.Exists(ctx, "bbmodel:Plot:dA:p2", "bbmodel:Plot:dA:p3").Result(); err != nil || n != 2 {
		t.Errorf("refused write: %d of its 2 models on the master (%v); want all (one MULTI/EXEC)", n, err)
	}
	if got, err := onMaster.SMembers(ctx, "doc:dA").Result(); err != nil || len(got) != 2 {
		t.Errorf("refused write: doc set %v (%v); want both models", got, err)
	}

	// A write that waits long enough returns once the replica is back, and not before.
	slow, err := storage.NewRedis(ctx, storage.RedisConfig{Addr: master.Addr, Password: replicationPassword,
		WaitReplicas: 1, WaitTimeout: 20 * time.Second, OverlayTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	done := make(chan error, 1)
	go func() { done <- slow.PutModels(ctx, docA, []storage.Model{model("Plot", "p4", `{"n": 4}`)}) }()
	select {
	case err := <-done:
		t.Fatalf("write returned (%v) while its only replica was stopped", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := syscall.Kill(replica.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(25 * time.Second):
		t.Fatal("write did not return after the replica resumed")
	}
	if got, err := onReplica.Get(ctx, "bbmodel:Plot:dA:p4").Result(); err != nil || got != `{"n": 4}` {
		t.Errorf("write acknowledged after the replica resumed, but the replica holds %q (%v)", got, err)
	}

	// More replicas than there are: every write is refused.
	two, err := storage.NewRedis(ctx, storage.RedisConfig{Addr: master.Addr, Password: replicationPassword,
		WaitReplicas: 2, WaitTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer two.Close()
	if err := two.PutDoc(ctx, storage.Doc{DocID: "dB"}); !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), " of 2 ") {
		t.Errorf("PutDoc waiting for 2 of 1 replicas = %v; want ErrUnavailable naming 2 replicas", err)
	}
}

// TestRedisSentinel: the store finds the master through the sentinels, and a wrong master
// name or password is a clear error at once, not an outage to wait out.
func TestRedisSentinel(t *testing.T) {
	g := redistest.StartGroup(t, redistest.GroupOptions{Replicas: 1, Sentinels: 3})
	ctx := t.Context()
	cfg := storage.RedisConfig{SentinelAddrs: g.SentinelAddrs(), MasterName: g.MasterName,
		Password: g.Password, SentinelPassword: g.SentinelPassword, WaitReplicas: 1, OverlayTTL: time.Hour}
	s, err := storage.NewRedis(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put(t, s, docA, model("Plot", "p1", oddAttrs))
	wantModels(t, s, docA, model("Plot", "p1", oddAttrs))
	onMaster := g.Nodes[0].Client(2)
	defer onMaster.Close()
	if got, err := onMaster.Get(ctx, "bbmodel:Plot:dA:p1").Result(); err != nil || got != oddAttrs {
		t.Errorf("the master holds %q (%v)", got, err)
	}
	if !strings.Contains(s.Addr(), g.MasterName) {
		t.Errorf("Addr() = %q; want the master's name", s.Addr())
	}

	bad := map[string]func(*storage.RedisConfig){
		"a master named":    func(c *storage.RedisConfig) { c.MasterName = "other" },
		"password":          func(c *storage.RedisConfig) { c.SentinelPassword = "wrong" },
		"password ":         func(c *storage.RedisConfig) { c.Password = "wrong" },
		"without a master":  func(c *storage.RedisConfig) { c.MasterName = "" },
		"want host:port":    func(c *storage.RedisConfig) { c.SentinelAddrs = []string{"127.0.0.1"} },
		"replicas to wait ": func(c *storage.RedisConfig) { c.WaitReplicas = -1 },
	}
	for want, change := range bad {
		c := cfg
		change(&c)
		s, err := storage.NewRedis(ctx, c)
		if err == nil {
			s.Close()
			t.Errorf("NewRedis with a wrong %s: no error", want)
			continue
		}
		if errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), strings.TrimSpace(want)) {
			t.Errorf("NewRedis: %v; want an error about %q that is not ErrUnavailable", err, want)
		}
		if strings.Contains(err.Error(), g.Password) || strings.Contains(err.Error(), g.SentinelPassword) {
			t.Errorf("NewRedis: error %q shows a password", err)
		}
	}

	// With every sentinel down the store is unavailable, not misconfigured.
	for _, sn := range g.Sentinels {
		sn.Kill()
	}
	c := cfg
	c.DialTimeout, c.IOTimeout = 300*time.Millisecond, 300*time.Millisecond
	if s, err := storage.NewRedis(context.Background(), c); !errors.Is(err, storage.ErrUnavailable) {
		if s != nil {
			s.Close()
		}
		t.Errorf("NewRedis with every sentinel down = %v; want ErrUnavailable", err)
	}
}
