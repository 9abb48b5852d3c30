package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/redis/go-redis/v9"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
)

const (
	composeSecret        = "compose-test-secret"
	composeRedisPassword = "0123456789abcdef0123456789abcdef"
	// composeRedisSecret is where compose puts the redis password in the containers.
	composeRedisSecret = "/run/secrets/redis_password"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// loadCompose loads docker-compose.yml the way `docker compose` would.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root := repoRoot()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithEnv([]string{"BOKEH_SECRET_KEY=" + composeSecret,
			"BOKEH_REDIS_PASSWORD=" + composeRedisPassword}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// argv is a service's full command line: entrypoint then command.
func argv(s types.ServiceConfig) []string {
	return append(append([]string{}, s.Entrypoint...), s.Command...)
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func workerServices(p *types.Project) []string {
	var out []string
	for name := range p.Services {
		if strings.HasPrefix(name, "ws-worker") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// TestComposeFile checks the compose topology and that every bokeh service's command is
// accepted by the real programs' flag parsers (--check-config).
func TestComposeFile(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"redis", "forwarder", "api", "nginx"} {
		if _, ok := p.Services[name]; !ok {
			t.Fatalf("service %s missing", name)
		}
	}
	workers := workerServices(p)
	if len(workers) < 2 {
		t.Fatalf("want at least two ws-worker services, have %v", workers)
	}
	nginx := p.Services["nginx"]
	if len(nginx.Ports) != 1 || nginx.Ports[0].Published != "8080" || nginx.Ports[0].Target != 80 {
		t.Errorf("nginx ports: %+v", nginx.Ports)
	}
	conf, err := os.ReadFile(filepath.Join(repoRoot(), "scripts", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range workers {
		if !strings.Contains(string(conf), "server "+w+":5007;") {
			t.Errorf("scripts/nginx.conf does not balance over %s", w)
		}
	}
	fwd, apiArgs := argv(p.Services["forwarder"]), argv(p.Services["api"])
	if in := flagValue(fwd, "--in"); !strings.HasSuffix(flagValue(apiArgs, "--zmqaddr"), ":"+in[strings.LastIndex(in, ":")+1:]) {
		t.Errorf("api publishes to %s, the forwarder listens on %s", flagValue(apiArgs, "--zmqaddr"), in)
	}
	if !slices.Contains(apiArgs, "--zmq-connect") || !slices.Contains(apiArgs, "--no-ws-start") || !slices.Contains(apiArgs, "--no-start-redis") {
		t.Errorf("api must connect to the forwarder and start neither workers nor redis: %v", apiArgs)
	}
	checkComposeCurve(t, p, workers)
	checkComposeRedisPassword(t, p)
	b := cluster.Build(t)
	keys := makeComposeKeys(t, p, b)
	for name, svc := range p.Services {
		args := withKeys(argv(svc), keys)
		var bin string
		switch {
		case len(args) > 0 && args[0] == "bokeh-server":
			bin = b.Server
		case len(args) > 0 && args[0] == "ws-worker":
			bin = b.Worker
		default:
			continue
		}
		if svc.Environment["BOKEH_SECRET_KEY"] == nil || *svc.Environment["BOKEH_SECRET_KEY"] != composeSecret {
			t.Errorf("%s does not get the shared BOKEH_SECRET_KEY", name)
		}
		if name == "keys" {
			continue // it ran already (makeComposeKeys)
		}
		cmd := exec.Command(bin, append(args[1:], "--check-config")...)
		cmd.Env = append(os.Environ(), "BOKEH_SECRET_KEY="+composeSecret)
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "configuration OK") {
			t.Errorf("%s: %v %v\n%s", name, args, err, out)
		}
	}
}

// checkComposeCurve checks that ZeroMQ between the compose services is CURVE: the forwarder
// accepts the workers' and the API's keys (kept apart), and they know the forwarder's.
func checkComposeCurve(t *testing.T, p *types.Project, workers []string) {
	t.Helper()
	fwd := argv(p.Services["forwarder"])
	if flagValue(fwd, "--zmq-curve-key") == "" || flagValue(fwd, "--zmq-curve-allow") == "" ||
		flagValue(fwd, "--zmq-curve-allow-publishers") == "" || flagValue(fwd, "--zmq-curve-allow") == flagValue(fwd, "--zmq-curve-allow-publishers") {
		t.Errorf("forwarder without CURVE and two separate allow-lists: %v", fwd)
	}
	serverKey := strings.TrimSuffix(flagValue(fwd, "--zmq-curve-key"), ".key") + ".pub"
	for _, name := range append([]string{"api"}, workers...) {
		args := argv(p.Services[name])
		if flagValue(args, "--zmq-curve-key") == "" || flagValue(args, "--zmq-curve-server-key") != serverKey {
			t.Errorf("%s: no CURVE key, or not the forwarder's public key %s: %v", name, serverKey, args)
		}
		if slices.Contains(args, "--zmq-insecure") {
			t.Errorf("%s runs --zmq-insecure", name)
		}
	}
	// The others start after the forwarder, which waits for the keys.
	if p.Services["forwarder"].DependsOn["keys"].Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("the forwarder does not wait for the keys service: %+v", p.Services["forwarder"].DependsOn)
	}
}

// makeComposeKeys runs the keys service's command locally, into a temporary directory that
// stands for the zmq-keys volume, and returns that directory.
func makeComposeKeys(t *testing.T, p *types.Project, b cluster.Binaries) string {
	t.Helper()
	dir := t.TempDir()
	args := withKeys(argv(p.Services["keys"]), dir)
	if out, err := exec.Command(b.Server, args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("keys service %v: %v\n%s", args, err, out)
	}
	return dir
}

// withKeys points the /keys paths of a command at dir.
func withKeys(args []string, dir string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if rest, ok := strings.CutPrefix(a, "/keys"); ok {
			out[i] = dir + rest
		}
	}
	return out
}

// checkComposeRedisPassword: redis requires the password of the secret redis_password, read
// from $BOKEH_REDIS_PASSWORD, and gets it, like the API, as a file: no command line holds it.
func checkComposeRedisPassword(t *testing.T, p *types.Project) {
	t.Helper()
	secret, ok := p.Secrets["redis_password"]
	if !ok || secret.Environment != "BOKEH_REDIS_PASSWORD" {
		t.Errorf("secret redis_password: %+v; want it read from $BOKEH_REDIS_PASSWORD", secret)
	}
	for _, name := range []string{"redis", "api"} {
		if !slices.ContainsFunc(p.Services[name].Secrets, func(s types.ServiceSecretConfig) bool { return s.Source == "redis_password" }) {
			t.Errorf("service %s does not get the secret redis_password", name)
		}
	}
	redisArgs := argv(p.Services["redis"])
	if script := strings.Join(redisArgs, " "); !strings.Contains(script, "requirepass") || !strings.Contains(script, composeRedisSecret) {
		t.Errorf("redis does not take requirepass from %s: %q", composeRedisSecret, redisArgs)
	}
	if got := flagValue(argv(p.Services["api"]), "--redis-password-file"); got != composeRedisSecret {
		t.Errorf("api --redis-password-file %q, want %s", got, composeRedisSecret)
	}
	for name, svc := range p.Services {
		for _, a := range argv(svc) {
			if strings.Contains(a, composeRedisPassword) {
				t.Errorf("service %s has the redis password on its command line: %q", name, a)
			}
		}
		for k, v := range svc.Environment {
			if v != nil && *v == composeRedisPassword {
				t.Errorf("service %s has the redis password in its environment (%s)", name, k)
			}
		}
	}
}

// localTopology rewrites compose commands to run on this machine: service host names become
// 127.0.0.1, every service port gets a free local port, and secret files are local files.
type localTopology struct {
	t       *testing.T
	ports   map[string]int    // "service:port" -> local port
	keys    string            // the directory standing for the zmq-keys volume
	secrets map[string]string // path in the containers -> local file
}

var addrPattern = regexp.MustCompile(`^(tcp|http|https)://([A-Za-z0-9_.-]+):(\d+)(.*)$`)

func (l *localTopology) port(service, port string) string {
	key := service + ":" + port
	if _, ok := l.ports[key]; !ok {
		l.ports[key] = cluster.FreePort(l.t)
	}
	return strconv.Itoa(l.ports[key])
}

func (l *localTopology) rewrite(p *types.Project, self string, args []string) []string {
	out := withKeys(args, l.keys)
	for i := 0; i < len(out); i++ {
		for path, local := range l.secrets {
			out[i] = strings.ReplaceAll(out[i], path, local)
		}
		a := out[i]
		if m := addrPattern.FindStringSubmatch(a); m != nil {
			owner := m[2]
			if owner == "0.0.0.0" || owner == "*" {
				owner = self
			}
			if _, ok := p.Services[owner]; ok {
				out[i] = m[1] + "://127.0.0.1:" + l.port(owner, m[3]) + m[4]
			}
			continue
		}
		if i+1 >= len(out) {
			continue
		}
		switch a {
		case "--ip":
			out[i+1] = "127.0.0.1"
		case "--redis-host":
			out[i+1] = "127.0.0.1"
		case "--port", "--ws-port":
			out[i+1] = l.port(self, out[i+1])
		case "--redis-port":
			owner := self
			if self != "redis" {
				owner = "redis"
			}
			out[i+1] = l.port(owner, out[i+1])
		}
	}
	return out
}

// TestComposeTopologyLocally starts the compose services as local processes from the very
// same commands (nginx aside: clients connect to the workers directly) and pushes an update
// through API → forwarder → both workers.
func TestComposeTopologyLocally(t *testing.T) {
	p := loadCompose(t)
	b := cluster.Build(t)
	secret := filepath.Join(t.TempDir(), "redis_password")
	if err := os.WriteFile(secret, []byte(composeRedisPassword), 0o400); err != nil {
		t.Fatal(err)
	}
	l := &localTopology{t: t, ports: map[string]int{}, keys: makeComposeKeys(t, p, b),
		secrets: map[string]string{composeRedisSecret: secret}}
	env := []string{"BOKEH_SECRET_KEY=" + composeSecret}
	start := func(name string) *cluster.Proc {
		args := l.rewrite(p, name, argv(p.Services[name]))
		bin := map[string]string{"bokeh-server": b.Server, "ws-worker": b.Worker, "sh": "sh"}[args[0]]
		if name == "redis" {
			args = append(args, "--dir", t.TempDir(), "--bind", "127.0.0.1")
		}
		return cluster.StartProc(t, name, bin, args[1:], env)
	}
	redisProc := start("redis")
	redisAddr := "127.0.0.1:" + l.port("redis", "6379")
	waitRedis(t, redisProc, redisAddr, composeRedisPassword)
	wantAuthRefused(t, redisAddr, "")
	if args := cmdline(t, redisProc.Pid()); strings.Contains(strings.Join(args, " "), composeRedisPassword) {
		t.Errorf("redis's command line holds the password: %q", args)
	}
	start("forwarder")
	apiProc := start("api")
	apiRoot := "http://127.0.0.1:" + l.port("api", "5006") + "/"
	cluster.WaitHTTP(t, apiProc, apiRoot+"bokeh/ping")
	var workerURLs []string
	for _, w := range workerServices(p) {
		proc := start(w)
		u := "127.0.0.1:" + l.port(w, "5007")
		cluster.WaitHTTP(t, proc, "http://"+u+"/healthz")
		workerURLs = append(workerURLs, "ws://"+u+"/bokeh/sub/")
	}

	c := apitest.NewPyClient(apiRoot)
	if out := c.Register(t, "composer", "pw"); out["status"] != true {
		t.Fatalf("register: %v", out)
	}
	c.UseDoc(t, "compose")
	ctx, _ := c.LoadDocument(t)
	plot := apitest.NewPlot(c.DocID, ctx.ID, 10)
	c.Push(t, apitest.MarshalModels(t, plot.Models))
	var info struct {
		APIKey string `json:"apikey"`
	}
	c.Do(t, "GET", "bokeh/bokehinfo/"+c.DocID+"/", nil, true).JSON(t, &info)

	var clients []*cluster.WSClient
	for _, u := range workerURLs {
		ws := cluster.Dial(t, u, true)
		ws.MustSubscribe(t, "bokehplot:"+c.DocID, info.APIKey)
		clients = append(clients, ws)
	}
	if r := c.Push(t, apitest.SourceUpdate(c.DocID, plot.Source, 10, 3)); r.Status != 200 {
		t.Fatalf("update: %d", r.Status)
	}
	for i, ws := range clients {
		frame, ok := ws.Next(t, 10*time.Second)
		if !ok || !strings.HasPrefix(frame, "bokehplot:"+c.DocID+":") || !strings.Contains(frame, plot.Source.ID) {
			t.Errorf("client of worker %d got %q, %v", i, frame, ok)
		}
	}
	wantKeys(t, redisAddr, composeRedisPassword, c.DocID, len(plot.Models))
}

// waitRedis waits (bounded) until redis at addr answers PING with password.
func waitRedis(t *testing.T, p *cluster.Proc, addr, password string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Password: password, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := c.Ping(t.Context()).Err()
		if err == nil {
			return
		}
		if !p.Running() || time.Now().After(deadline) {
			t.Fatalf("redis of the compose file not ready (%v); log:\n%s", err, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
