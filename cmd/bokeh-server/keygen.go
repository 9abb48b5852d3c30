package main

import (
	"fmt"
	"io"
	"os"

	"github.com/bokeh-go/bokeh-server/cmd/internal/curvekeys"
)

const keygenUsage = `Usage: bokeh-server keygen [--if-missing] DIR [NAME ...]

Writes a CURVE keypair for each NAME (default: bokeh) into DIR: NAME.key, the secret key
(mode 0600, for --zmq-curve-key of that process), and NAME.pub, its public key (in the
--zmq-curve-allow directory of the servers it connects to, or --zmq-curve-server-key of
the clients that connect to it). A NAME may name a subdirectory, so that each allow-list
directory holds only the keys it should. Existing keys are never overwritten: that is an
error, or with --if-missing the keypair is kept. For a forwarder, two API processes and
two workers:

  bokeh-server keygen keys forwarder apis/api1 apis/api2 workers/worker1 workers/worker2
  bokeh-server forwarder --zmq-curve-key keys/forwarder.key \
      --zmq-curve-allow keys/workers --zmq-curve-allow-publishers keys/apis ...
  bokeh-server --zmq-connect --zmq-curve-key keys/apis/api1.key \
      --zmq-curve-server-key keys/forwarder.pub ...
  ws-worker --zmq-curve-key keys/workers/worker1.key --zmq-curve-server-key keys/forwarder.pub ...
`

// runKeygen is the "keygen" subcommand.
func runKeygen(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, keygenUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	ifMissing := args[0] == "--if-missing"
	if ifMissing {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, keygenUsage)
		return 2
	}
	dir, names := args[0], args[1:]
	if len(names) == 0 {
		names = []string{"bokeh"}
	}
	for _, name := range names {
		if secret, public, err := curvekeys.Paths(dir, name); err == nil && ifMissing && exists(secret) && exists(public) {
			fmt.Fprintf(stdout, "%s: kept %s and %s\n", name, secret, public)
			continue
		}
		secret, public, err := curvekeys.Generate(dir, name)
		if err != nil {
			fmt.Fprintln(stderr, "bokeh-server keygen:", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: secret key %s, public key %s\n", name, secret, public)
	}
	return 0
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
