package broker

import (
	"errors"
	"fmt"
	"strings"

	zmq "github.com/pebbe/zmq4"
)

// CURVE: ZeroMQ's own authentication and encryption (RFC 26). A socket that binds (an API
// publishing straight to its workers, a forwarder) is a CURVE server with a secret key and
// an allow-list of client public keys, checked by this process's ZAP handler (zap.go). A
// socket that connects (a worker, an API publishing into a forwarder) is a client: it
// knows the server's public key and has a keypair of its own. Keys are 40 characters of
// Z85 text.

// Curve is the CURVE configuration of one socket; the zero value means plaintext.
type Curve struct {
	// Secret is this side's secret key.
	Secret string
	// ServerKey, on a client, is the public key of the server it connects to.
	ServerKey string
	// Allow, on a server, lists the public keys of the clients it accepts.
	Allow []string
}

// Enabled reports whether c asks for CURVE.
func (c Curve) Enabled() bool { return c.Secret != "" }

// KeyLen is the length of a key in Z85.
const KeyLen = 40

// CheckKey reports whether key is a Z85 CURVE key.
func CheckKey(key string) error {
	if len(key) != KeyLen {
		return fmt.Errorf("a CURVE key is %d characters of Z85, not %d", KeyLen, len(key))
	}
	// Z85's alphabet (ZeroMQ RFC 32).
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
	for _, c := range key {
		if !strings.ContainsRune(alphabet, c) {
			return fmt.Errorf("a CURVE key is Z85 text: %q is not a Z85 character", c)
		}
	}
	return nil
}

// NewKeypair makes a CURVE keypair.
func NewKeypair() (public, secret string, err error) {
	if !zmq.HasCurve() {
		return "", "", ErrNoCurve
	}
	public, secret, err = zmq.NewCurveKeypair()
	if err != nil {
		return "", "", fmt.Errorf("zmq curve keypair: %w", err)
	}
	return public, secret, nil
}

// PublicKey derives the public key of a secret key.
func PublicKey(secret string) (string, error) {
	if err := CheckKey(secret); err != nil {
		return "", err
	}
	public, err := zmq.AuthCurvePublic(secret)
	if err != nil {
		return "", fmt.Errorf("zmq curve public key: %w", err)
	}
	return public, nil
}

// ErrNoCurve is returned when the libzmq in use was built without CURVE.
var ErrNoCurve = errors.New("this libzmq was built without CURVE (zmq_has(\"curve\") is false): install a libzmq with libsodium, such as Debian's libzmq5")

// applyCurve configures sock, before it binds or connects, as a CURVE server or client;
// release forgets a server's allow-list once the socket is closed.
func applyCurve(sock *zmq.Socket, c Curve, server bool) (release func(), err error) {
	release = func() {}
	if !c.Enabled() {
		return release, nil
	}
	if !zmq.HasCurve() {
		return release, ErrNoCurve
	}
	if err := CheckKey(c.Secret); err != nil {
		return release, fmt.Errorf("zmq curve secret key: %w", err)
	}
	public, err := PublicKey(c.Secret)
	if err != nil {
		return release, err
	}
	if server {
		domain, release, err := zapAllow(c.Allow)
		if err != nil {
			return func() {}, err
		}
		for _, set := range []func() error{
			func() error { return sock.SetZapDomain(domain) },
			func() error { return sock.SetCurveServer(1) },
			func() error { return sock.SetCurveSecretkey(c.Secret) },
		} {
			if err := set(); err != nil {
				release()
				return func() {}, fmt.Errorf("zmq curve server options: %w", err)
			}
		}
		return release, nil
	}
	if err := CheckKey(c.ServerKey); err != nil {
		return release, fmt.Errorf("zmq curve server key: %w", err)
	}
	for _, set := range []func() error{
		func() error { return sock.SetCurveServerkey(c.ServerKey) },
		func() error { return sock.SetCurvePublickey(public) },
		func() error { return sock.SetCurveSecretkey(c.Secret) },
	} {
		if err := set(); err != nil {
			return release, fmt.Errorf("zmq curve client options: %w", err)
		}
	}
	return release, nil
}
