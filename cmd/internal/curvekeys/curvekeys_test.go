package curvekeys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bokeh-go/bokeh-server/broker"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestGenerateAndRead(t *testing.T) {
	dir := t.TempDir()
	secretPath, publicPath, err := Generate(dir, "workers/w1")
	if err != nil {
		t.Fatal(err)
	}
	if secretPath != filepath.Join(dir, "workers", "w1.key") || publicPath != filepath.Join(dir, "workers", "w1.pub") {
		t.Fatalf("paths %s %s", secretPath, publicPath)
	}
	st, _ := os.Stat(secretPath)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("secret key mode %v, want 0600", st.Mode().Perm())
	}
	if _, _, err := Generate(dir, "workers/w1"); err == nil || !strings.Contains(err.Error(), "never overwritten") {
		t.Errorf("a second keygen of w1: %v", err)
	}
	secret, err := ReadSecret(secretPath)
	if err != nil {
		t.Fatal(err)
	}
	public, err := ReadPublic(publicPath)
	if err != nil || len(secret) != 40 || len(public) != 40 || secret == public {
		t.Fatalf("keys %q %q %v", secret, public, err)
	}
	os.Chmod(secretPath, 0o644)
	if _, err := ReadSecret(secretPath); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a secret key others can read: %v", err)
	}
	for _, bad := range []string{"", "/abs", "../up", "a/../../b", ".hidden"} {
		if _, _, err := Paths(dir, bad); err == nil {
			t.Errorf("Paths(%q) accepted", bad)
		}
	}
}

func TestParse(t *testing.T) {
	key := strings.Repeat("a", 40)
	for text, ok := range map[string]bool{
		key + "\n":                       true,
		"# comment\n\n  " + key + "  \n": true,
		"":                               false,
		"# only a comment\n":             false,
		key + "\n" + key + "\n":          false,
		strings.Repeat("a", 39) + "\n":   false,
		strings.Repeat("~", 40) + "\n":   false,
	} {
		if _, err := Parse([]byte(text)); (err == nil) != ok {
			t.Errorf("Parse(%q): %v, want ok %v", text, err, ok)
		}
	}
}

func TestAllowList(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadAllowList(dir); err == nil {
		t.Error("an empty allow-list was accepted: nobody could connect")
	}
	Generate(dir, "a")
	Generate(dir, "b")
	keys, err := ReadAllowList(dir)
	if err != nil || len(keys) != 2 {
		t.Fatalf("allow-list %v %v", keys, err)
	}
}

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	serverSecret, serverPublic, _ := Generate(dir, "server")
	clientSecret, _, _ := Generate(dir, "clients/c1")
	none := env(nil)

	// Nothing given: plaintext, allowed on loopback only.
	var f Flags
	if c, err := f.Server(none); err != nil || c.Enabled() {
		t.Fatalf("no key: %+v %v", c, err)
	}
	if f.CheckEndpoint("--zmqaddr", "tcp://127.0.0.1:5555", f.mustServer(t, none)) != nil {
		t.Error("plaintext refused on loopback")
	}
	if err := f.CheckEndpoint("--zmqaddr", "tcp://192.0.2.1:5555", f.mustServer(t, none)); err == nil || !strings.Contains(err.Error(), "--zmq-insecure") {
		t.Errorf("plaintext off loopback: %v", err)
	}
	f.Insecure = true
	if f.CheckEndpoint("--zmqaddr", "tcp://192.0.2.1:5555", f.mustServer(t, none)) != nil {
		t.Error("--zmq-insecure did not allow plaintext")
	}

	// A server needs its allow-list, a client the server's key.
	s := Flags{KeyFile: serverSecret}
	if _, err := s.Server(none); err == nil || !strings.Contains(err.Error(), "--zmq-curve-allow") {
		t.Errorf("server without allow-list: %v", err)
	}
	s.AllowDir = filepath.Join(dir, "clients")
	if c, err := s.Server(none); err != nil || !c.Enabled() || len(c.Allow) != 1 {
		t.Errorf("server: %+v %v", c, err)
	}
	c := Flags{KeyFile: clientSecret}
	if _, err := c.Client(none); err == nil || !strings.Contains(err.Error(), "--zmq-curve-server-key") {
		t.Errorf("client without the server's key: %v", err)
	}
	c.ServerKeyFile = serverPublic
	if got, err := c.Client(none); err != nil || !got.Enabled() || got.ServerKey == "" {
		t.Errorf("client: %+v %v", got, err)
	}
	if _, err := (&Flags{ServerKeyFile: serverPublic}).Client(none); err == nil {
		t.Error("--zmq-curve-server-key without a key of its own was accepted")
	}

	// Keys in the environment, as bokeh-server hands them to its workers.
	secret, _ := ReadSecret(clientSecret)
	public, _ := ReadPublic(serverPublic)
	got, err := (&Flags{}).Client(env(map[string]string{EnvSecret: secret, EnvServerKey: public}))
	if err != nil || got.Secret != secret || got.ServerKey != public {
		t.Errorf("keys from the environment: %+v %v", got, err)
	}
	if _, err := (&Flags{}).Client(env(map[string]string{EnvSecret: "short"})); err == nil {
		t.Error("a malformed key in the environment was accepted")
	}
}

func (f *Flags) mustServer(t *testing.T, getenv func(string) string) broker.Curve {
	t.Helper()
	s, err := f.Server(getenv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
