package curvekeys

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/bokeh-go/bokeh-server/broker"
)

// Environment variables that carry keys to a program instead of its command line, where
// any local user could read them (/proc/<pid>/cmdline). bokeh-server hands its workers
// their keys this way.
const (
	EnvSecret    = "BOKEH_ZMQ_CURVE_KEY"        // the program's own secret key (Z85)
	EnvServerKey = "BOKEH_ZMQ_CURVE_SERVER_KEY" // the public key of the server it connects to
)

// Flags are the CURVE flags of one program.
type Flags struct {
	KeyFile         string
	ServerKeyFile   string
	AllowDir        string
	AllowPublishers string // the forwarder's input
	Insecure        bool
}

// AddKey registers --zmq-curve-key and --zmq-insecure, which every program has.
func (f *Flags) AddKey(fs *pflag.FlagSet) {
	fs.StringVar(&f.KeyFile, "zmq-curve-key", "", "CURVE secret key file of this process (made by bokeh-server keygen; default $"+EnvSecret+"): ZeroMQ traffic is then authenticated and encrypted")
	fs.BoolVar(&f.Insecure, "zmq-insecure", false, "allow plaintext ZeroMQ on an address that is not loopback (anyone who reaches it can read every change, and inject some)")
}

// AddClient registers --zmq-curve-server-key, for a program that connects.
func (f *Flags) AddClient(fs *pflag.FlagSet, server string) {
	fs.StringVar(&f.ServerKeyFile, "zmq-curve-server-key", "", "public key file of the "+server+" to connect to, with --zmq-curve-key (default $"+EnvServerKey+")")
}

// AddAllow registers --zmq-curve-allow, for a program that binds.
func (f *Flags) AddAllow(fs *pflag.FlagSet, clients string) {
	fs.StringVar(&f.AllowDir, "zmq-curve-allow", "", "directory of the public keys (*.pub) of the "+clients+" allowed to connect, with --zmq-curve-key")
}

// secret reads the secret key from --zmq-curve-key or the environment; "" for none.
func (f *Flags) secret(getenv func(string) string) (string, error) {
	if f.KeyFile != "" {
		return ReadSecret(f.KeyFile)
	}
	if k := getenv(EnvSecret); k != "" {
		if err := broker.CheckKey(k); err != nil {
			return "", fmt.Errorf("$%s: %w", EnvSecret, err)
		}
		return k, nil
	}
	return "", nil
}

// Server is the Curve of a socket that binds: the secret key and the allow-list (extra keys
// are allowed too, such as the ephemeral key of bokeh-server's own workers). Without a
// secret key it is plaintext.
func (f *Flags) Server(getenv func(string) string, extra ...string) (broker.Curve, error) {
	secret, err := f.secret(getenv)
	if err != nil || secret == "" {
		if err == nil && f.AllowDir != "" {
			err = errors.New("--zmq-curve-allow needs --zmq-curve-key (the server's own secret key)")
		}
		return broker.Curve{}, err
	}
	c := broker.Curve{Secret: secret, Allow: extra}
	if f.AllowDir != "" {
		keys, err := ReadAllowList(f.AllowDir)
		if err != nil {
			return broker.Curve{}, err
		}
		c.Allow = append(c.Allow, keys...)
	}
	if len(c.Allow) == 0 {
		return broker.Curve{}, errors.New("--zmq-curve-key needs --zmq-curve-allow DIR: the public keys of the clients allowed to connect")
	}
	return c, nil
}

// Client is the Curve of a socket that connects: its secret key and the server's public
// key. Without a secret key it is plaintext.
func (f *Flags) Client(getenv func(string) string) (broker.Curve, error) {
	secret, err := f.secret(getenv)
	if err != nil || secret == "" {
		if err == nil && f.ServerKeyFile != "" {
			err = errors.New("--zmq-curve-server-key needs --zmq-curve-key (this process's own secret key)")
		}
		return broker.Curve{}, err
	}
	server := getenv(EnvServerKey)
	if f.ServerKeyFile != "" {
		if server, err = ReadPublic(f.ServerKeyFile); err != nil {
			return broker.Curve{}, err
		}
	}
	if server == "" {
		return broker.Curve{}, errors.New("--zmq-curve-key needs --zmq-curve-server-key FILE: the public key of the server to connect to")
	}
	if err := broker.CheckKey(server); err != nil {
		return broker.Curve{}, fmt.Errorf("CURVE server key: %w", err)
	}
	return broker.Curve{Secret: secret, ServerKey: server}, nil
}

// CheckEndpoint refuses plaintext on an address other hosts can reach, unless
// --zmq-insecure.
func (f *Flags) CheckEndpoint(flag, addr string, c broker.Curve) error {
	if c.Enabled() || f.Insecure || broker.LocalEndpoint(addr) {
		return nil
	}
	return fmt.Errorf("%s %s is not a loopback address, and ZeroMQ without CURVE lets anyone who reaches it read every change and inject some: "+
		"make keys with `bokeh-server keygen DIR NAME` and pass --zmq-curve-key (and --zmq-curve-allow or --zmq-curve-server-key, see --help), "+
		"or accept the risk with --zmq-insecure", flag, addr)
}
