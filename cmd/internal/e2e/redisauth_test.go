package e2e

import (
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
)

// TestManagedRedisPassword: the managed redis requires a random password that is in no
// command line, environment or log, kept in a private file of the data dir; redis refuses
// clients without it; a restart keeps it, and a dataset without one (an older release's) is
// served under a new one.
func TestManagedRedisPassword(t *testing.T) {
	b := cluster.Build(t)
	port := cluster.FreePort(t)
	dir := t.TempDir()
	s := cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", StartRedis: true, RedisPort: port, DataDir: dir})
	redisDir := filepath.Join(dir, "redis")
	password := s.ManagedRedisPassword(t)
	if raw, err := hex.DecodeString(password); err != nil || len(raw) != 32 {
		t.Errorf("password %d characters (%v); want 32 random bytes in hex", len(password), err)
	}
	wantPerm(t, redisDir, 0o700)
	wantPerm(t, filepath.Join(redisDir, "password"), 0o600)
	wantPerm(t, filepath.Join(redisDir, "redis.conf"), 0o600)

	c := apitest.NewPyClient(s.Root)
	c.UseDoc(t, "guarded")
	ctx, _ := c.LoadDocument(t)
	plot := apitest.NewPlot(c.DocID, ctx.ID, 20)
	if r := c.Push(t, apitest.MarshalModels(t, plot.Models)); r.Status != 200 {
		t.Fatalf("push: %d", r.Status)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	wantAuthRefused(t, addr, "")
	wantAuthRefused(t, addr, "not-the-password")
	wantKeys(t, addr, password, c.DocID, len(plot.Models))
	redisPids := childrenNamed(s.Pid(), "redis-server")
	if len(redisPids) != 1 {
		t.Fatalf("managed redis-server children: %v", redisPids)
	}
	if args := cmdline(t, redisPids[0]); len(args) != 2 || args[1] != filepath.Join(redisDir, "redis.conf") {
		t.Errorf("managed redis command line %q; want the program and its configuration file", args)
	}
	wantSecretHidden(t, s, password)

	// The operator's way in, as the README shows it.
	cli := exec.Command("redis-cli", "-p", strconv.Itoa(port), "-n", "2", "SCARD", "doc:"+c.DocID)
	cli.Env = append(os.Environ(), "REDISCLI_AUTH="+password)
	if out, err := cli.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(len(plot.Models)) {
		t.Errorf("REDISCLI_AUTH=... redis-cli SCARD: %q %v; want %d", out, err, len(plot.Models))
	}

	s.Restart(t)
	if again := s.ManagedRedisPassword(t); again != password {
		t.Errorf("the password changed across a restart")
	}
	wantKeys(t, addr, password, c.DocID, len(plot.Models))

	// A data dir of a release without passwords: the dataset is served under a new one.
	s.Stop(t)
	if err := os.Remove(filepath.Join(redisDir, "password")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(redisDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)
	fresh := s.ManagedRedisPassword(t)
	if fresh == password {
		t.Error("no new password was made")
	}
	wantPerm(t, redisDir, 0o700)
	again := apitest.NewPyClient(s.Root)
	again.UseDoc(t, "guarded")
	if again.DocID != c.DocID || len(again.Pull(t)) != len(plot.Models) {
		t.Errorf("after the new password: doc %s (want %s), %d models", again.DocID, c.DocID, len(again.Pull(t)))
	}
	wantAuthRefused(t, addr, password)
	wantSecretHidden(t, s, fresh)
}

// TestRedisPasswordFlags: passwords come from files or the environment; a password on the
// command line (--redis-url) is warned about, and contradictions are refused.
func TestRedisPasswordFlags(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	startFails(t, "is empty", "--backend", "redis", "--no-start-redis", "--redis-password-file", empty)
	startFails(t, "no such file", "--backend", "redis", "--no-start-redis", "--redis-password-file", empty+".missing")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startFails(t, "two redis passwords", "--backend", "redis", "--redis-url", "redis://:other@127.0.0.1:1", "--redis-password-file", pw)
	startFails(t, "needs --redis-master", "--backend", "redis", "--redis-sentinel", "127.0.0.1:26379")
	startFails(t, "needs --redis-sentinel", "--backend", "redis", "--redis-master", "m")
	startFails(t, "not host:port", "--backend", "redis", "--redis-sentinel", "127.0.0.1", "--redis-master", "m")
	startFails(t, "exclude each other", "--backend", "redis", "--redis-sentinel", "127.0.0.1:1", "--redis-master", "m", "--redis-url", "redis://h:1")
	startFails(t, "exclude each other", "--backend", "redis", "--redis-sentinel", "127.0.0.1:1", "--redis-master", "m", "--start-redis")
	startFails(t, "has none", "--backend", "redis", "--redis-wait-replicas", "1")
	startFails(t, "must be 0", "--backend", "redis", "--no-start-redis", "--redis-wait-replicas", "-1")

	// A wrong password is a clear error at start, not an outage to wait out.
	b := cluster.Build(t)
	port := cluster.FreePort(t)
	dir := t.TempDir()
	s := cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", StartRedis: true, RedisPort: port, DataDir: dir, NoWSStart: true})
	startFails(t, "password", "--backend", "redis", "--no-start-redis", "--redis-port", strconv.Itoa(port), "--storage-wait", "1m")
	startFails(t, "password", "--backend", "redis", "--no-start-redis", "--redis-port", strconv.Itoa(port), "--redis-password-file", pw)

	// A second API process reaches the managed redis with its password file, and one given
	// in the URL works but is warned about.
	file := filepath.Join(dir, "redis", "password")
	second := cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", RedisPort: port, NoWSStart: true,
		Extra: []string{"--redis-password-file", file}})
	c := apitest.NewPyClient(second.Root)
	c.UseDoc(t, "second")
	first := apitest.NewPyClient(s.Root)
	first.UseDoc(t, "second")
	if first.DocID != c.DocID {
		t.Errorf("the two API processes do not share the managed redis")
	}
	inURL := cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", NoWSStart: true,
		Extra: []string{"--redis-url", "redis://:" + s.ManagedRedisPassword(t) + "@127.0.0.1:" + strconv.Itoa(port)}})
	if line := logLine(inURL.Proc, "--redis-url holds a password"); line == "" {
		t.Errorf("no warning about the password in --redis-url:\n%s", inURL.Log())
	}
	env := cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", RedisPort: port, NoWSStart: true,
		Env: []string{"BOKEH_REDIS_PASSWORD=" + s.ManagedRedisPassword(t)}})
	if r := apitest.Get(t, env.Base+"/readyz", nil); r.Status != 200 {
		t.Errorf("password from $BOKEH_REDIS_PASSWORD: /readyz %d %s", r.Status, r.Body)
	}

	// A managed redis may take its password from the environment, which its children (redis,
	// the worker) do not inherit.
	const chosen = "chosen-managed-password"
	port2 := cluster.FreePort(t)
	own := cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", StartRedis: true, RedisPort: port2,
		Env: []string{"BOKEH_REDIS_PASSWORD=" + chosen}})
	addr2 := "127.0.0.1:" + strconv.Itoa(port2)
	wantAuthRefused(t, addr2, "")
	c2 := redis.NewClient(&redis.Options{Addr: addr2, Password: chosen, MaxRetries: -1})
	defer c2.Close()
	if err := c2.Ping(t.Context()).Err(); err != nil {
		t.Errorf("managed redis with the password from $BOKEH_REDIS_PASSWORD: %v", err)
	}
	children := cluster.ChildPids(own.Pid())
	if len(children) < 2 {
		t.Errorf("children of bokeh-server: %v; want redis and a worker", children)
	}
	for _, pid := range children {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil {
			continue
		}
		if strings.Contains(string(b), chosen) {
			t.Errorf("child %q inherited the redis password in its environment", cmdline(t, pid))
		}
		// The secret key reaches the worker on purpose (it needs it), redis never.
		if name := strings.Join(cmdline(t, pid), " "); strings.Contains(name, "redis-server") && strings.Contains(string(b), own.Opts.SecretKey) {
			t.Errorf("the managed redis %q inherited the secret key", name)
		}
	}
}

func wantPerm(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s: mode %#o, want %#o", path, got, want)
	}
}

// wantAuthRefused checks that redis at addr refuses a client with password.
func wantAuthRefused(t *testing.T, addr, password string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Password: password, DB: 2, MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(t.Context()).Err(); !redis.IsAuthError(err) {
		t.Errorf("redis with password %q: PING = %v; want an authentication error", password, err)
	}
}

// wantKeys checks that redis at addr, with password, holds n models of docid.
func wantKeys(t *testing.T, addr, password, docid string, n int) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Password: password, DB: 2, MaxRetries: -1})
	defer c.Close()
	if got, err := c.SCard(t.Context(), "doc:"+docid).Result(); err != nil || got != int64(n) {
		t.Errorf("redis holds %d models of %s (%v); want %d", got, docid, err, n)
	}
}

// cmdline is a process's command line.
func cmdline(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// wantSecretHidden checks that secret is in no command line or environment of the server
// and its descendants, and not in its log.
func wantSecretHidden(t *testing.T, s *cluster.Server, secret string) {
	t.Helper()
	pids := []int{s.Pid()}
	for i := 0; i < len(pids); i++ {
		pids = append(pids, cluster.ChildPids(pids[i])...)
	}
	for _, pid := range pids {
		for _, file := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + file)
			if err != nil {
				continue // exited meanwhile
			}
			if strings.Contains(string(b), secret) {
				t.Errorf("the redis password is in /proc/%d/%s (%q)", pid, file, cmdline(t, pid))
			}
		}
	}
	if strings.Contains(s.Log(), secret) {
		t.Error("the redis password is in bokeh-server's log")
	}
	t.Logf("checked the command lines and environments of %d processes and the log", len(pids))
}
