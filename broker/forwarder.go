package broker

import (
	"context"
	"fmt"
	"log/slog"

	zmq "github.com/pebbe/zmq4"
)

// Forwarder lets N API processes and M websocket workers meet at two well-known addresses:
// publishers connect to its input (an XSUB socket), workers to its output (an XPUB socket).
//
// Like the 0.8.x FORWARDER device, the input subscribes to everything, and the output sends
// each worker only the topics it subscribed to. That is what makes subscription
// acknowledgements (ack.go) hold for every publisher: an acknowledgement reaches a worker
// only after the output has the worker's subscription, and every publisher sends everything
// here, so any message published after it follows it. (Filtering at the publishers instead
// would leave a window in which one publisher has acknowledged while another has not yet
// seen the subscription.) The cost is that every published message crosses the
// publisher-to-forwarder link once, whoever watches; it already crossed the client-to-API
// link as an HTTP request.
//
// The output is verbose and passes every worker's subscriptions upstream, duplicates
// included, so that the publishers see and answer every acknowledgement request.
type Forwarder struct {
	in, out      *zmq.Socket
	releaseCurve []func()    // forget the CURVE allow-lists (curve.go)
	ctlRx, ctlTx *zmq.Socket // steers zmq_proxy: Run's cancel sends TERMINATE
	inEP, outEP  string
	log          *slog.Logger
}

// NewForwarder binds the input and output addresses ("tcp://host:*" picks a free port).
func NewForwarder(in, out string, opts ...Option) (*Forwarder, error) {
	o := buildOptions(opts)
	f := &Forwarder{log: o.log}
	if err := f.open(in, out, o); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

func (f *Forwarder) open(in, out string, o options) error {
	var err error
	if f.in, err = newSocket(zmq.XSUB, o); err != nil {
		return err
	}
	if err = f.curve(f.in, Curve{Secret: o.curve.Secret, Allow: o.curveIn}); err != nil {
		return err
	}
	if err = attach(f.in, in, Bind, "is another forwarder running? choose another input address"); err != nil {
		return err
	}
	// Subscribe to everything; the XSUB socket repeats it to every publisher that connects.
	if _, err = f.in.SendBytes([]byte{1}, 0); err != nil {
		return fmt.Errorf("zmq subscribe input to everything: %w", err)
	}
	if f.out, err = newSocket(zmq.XPUB, o); err != nil {
		return err
	}
	if err = f.out.SetXpubVerbose(1); err != nil {
		return fmt.Errorf("zmq socket XPUB options: %w", err)
	}
	if err = f.curve(f.out, o.curve); err != nil {
		return err
	}
	if err = attach(f.out, out, Bind, "is another forwarder running? choose another output address"); err != nil {
		return err
	}
	f.inEP, f.outEP = boundEndpoint(f.in, in), boundEndpoint(f.out, out)
	ctl := inprocName("forwarder-ctl")
	if f.ctlRx, err = zmq.NewSocket(zmq.PAIR); err != nil {
		return fmt.Errorf("zmq control socket: %w", err)
	}
	if err = f.ctlRx.Bind(ctl); err != nil {
		return fmt.Errorf("zmq bind %s: %w", ctl, err)
	}
	if f.ctlTx, err = zmq.NewSocket(zmq.PAIR); err != nil {
		return fmt.Errorf("zmq control socket: %w", err)
	}
	if err = f.ctlTx.Connect(ctl); err != nil {
		return fmt.Errorf("zmq connect %s: %w", ctl, err)
	}
	return nil
}

// curve makes sock a CURVE server accepting c.Allow, when c has a secret key.
func (f *Forwarder) curve(sock *zmq.Socket, c Curve) error {
	release, err := applyCurve(sock, c, true)
	f.releaseCurve = append(f.releaseCurve, release)
	return err
}

func (f *Forwarder) close() {
	for _, sock := range []*zmq.Socket{f.in, f.out, f.ctlRx, f.ctlTx} {
		if sock != nil {
			sock.SetLinger(0)
			sock.Close()
		}
	}
	for _, release := range f.releaseCurve {
		release()
	}
}

// InputEndpoint is where publishers connect.
func (f *Forwarder) InputEndpoint() string { return f.inEP }

// OutputEndpoint is where subscribers connect.
func (f *Forwarder) OutputEndpoint() string { return f.outEP }

// Run relays messages and subscriptions until ctx is cancelled, then closes the sockets.
// Call it once.
func (f *Forwarder) Run(ctx context.Context) error {
	f.log.Info("zmq forwarder running", "input", f.inEP, "output", f.outEP)
	proxyDone := make(chan struct{})
	stopperDone := make(chan struct{})
	go func() {
		defer close(stopperDone)
		select {
		case <-ctx.Done():
			if _, err := f.ctlTx.Send("TERMINATE", 0); err != nil {
				f.log.Error("zmq forwarder stop", "err", err)
			}
		case <-proxyDone:
		}
	}()
	err := zmq.ProxySteerable(f.in, f.out, nil, f.ctlRx)
	close(proxyDone)
	<-stopperDone
	f.close()
	if err != nil {
		return fmt.Errorf("zmq forwarder %s -> %s: %w", f.inEP, f.outEP, err)
	}
	return nil
}
