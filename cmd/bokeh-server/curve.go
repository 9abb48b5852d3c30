package main

import (
	"errors"

	"github.com/bokeh-go/bokeh-server/broker"
	"github.com/bokeh-go/bokeh-server/cmd/internal/curvekeys"
)

// publisherCurve works out the CURVE settings of the API's publisher and, when it starts
// its own workers, the environment that gives them theirs: a keypair made at start, added
// to the allow-list, so that nothing needs configuring for them.
//
// Binding, the publisher is a CURVE server when it has a key (--zmq-curve-key) or, on a
// loopback address, --zmq-curve-local asks for one made at start. Connecting to a
// forwarder, it is a client. Plaintext is refused where other hosts can reach the address,
// unless --zmq-insecure.
func publisherCurve(o *options, getenv func(string) string) (c broker.Curve, workerEnv []string, err error) {
	if o.ZMQConnect {
		if c, err = o.Curve.Client(getenv); err != nil {
			return c, nil, err
		}
		return c, nil, o.Curve.CheckEndpoint("--zmqaddr", o.ZMQAddr, c)
	}
	keyed := o.Curve.KeyFile != "" || getenv(curvekeys.EnvSecret) != ""
	if o.CurveLocal && !keyed && o.NoWSStart {
		return c, nil, errors.New("--zmq-curve-local makes keys for the workers bokeh-server starts; with --no-ws-start give keys instead (--zmq-curve-key and --zmq-curve-allow)")
	}
	var childPublic, childSecret string
	var extra []string
	if !o.NoWSStart && (keyed || o.CurveLocal) {
		if childPublic, childSecret, err = broker.NewKeypair(); err != nil {
			return c, nil, err
		}
		extra = append(extra, childPublic)
	}
	if c, err = o.Curve.Server(getenv, extra...); err != nil {
		return c, nil, err
	}
	if !c.Enabled() && o.CurveLocal {
		var secret string
		if _, secret, err = broker.NewKeypair(); err != nil {
			return c, nil, err
		}
		c = broker.Curve{Secret: secret, Allow: extra}
	}
	if err = o.Curve.CheckEndpoint("--zmqaddr", o.ZMQAddr, c); err != nil || childSecret == "" {
		return c, nil, err
	}
	serverPublic, err := broker.PublicKey(c.Secret)
	if err != nil {
		return c, nil, err
	}
	return c, []string{curvekeys.EnvSecret + "=" + childSecret, curvekeys.EnvServerKey + "=" + serverPublic}, nil
}
