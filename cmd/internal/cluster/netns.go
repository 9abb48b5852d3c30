package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Network is a set of Linux network namespaces, one per host, joined by veth pairs to a
// bridge in a namespace of its own: machines on one segment of 192.0.2.0/24 (TEST-NET-1,
// documentation addresses). Nothing is ever configured outside these namespaces, and they
// are deleted when the test ends, passed or failed.
type Network struct {
	tb     testing.TB
	prefix string
	hub    string
	hosts  map[string]*Host
}

// Host is one namespace of a Network.
type Host struct {
	Name string // short name, e.g. "fwd"
	NS   string // the namespace's name
	IP   string // its address on the segment
}

// NewNetwork makes the bridge namespace, or skips the test with the reason when namespaces
// cannot be made here (not root, no iproute2, no permission).
func NewNetwork(tb testing.TB) *Network {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("MULTI-HOST TEST NOT RUN: network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip("MULTI-HOST TEST NOT RUN: no ip command (Debian package iproute2)")
	}
	n := &Network{tb: tb, prefix: fmt.Sprintf("bk%d", os.Getpid()%100000), hosts: map[string]*Host{}}
	n.hub = n.prefix + "-net"
	if out, err := exec.Command("ip", "netns", "add", n.hub).CombinedOutput(); err != nil {
		tb.Skipf("MULTI-HOST TEST NOT RUN: cannot make a network namespace here: %v: %s", err, out)
	}
	tb.Cleanup(n.remove)
	n.run("ip", "-n", n.hub, "link", "add", "br0", "type", "bridge")
	n.run("ip", "-n", n.hub, "link", "set", "br0", "up")
	return n
}

// run runs an iproute2 command, failing the test on error.
func (n *Network) run(args ...string) {
	n.tb.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		n.tb.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Host adds a host named name at 192.0.2.<last>: a namespace with loopback and eth0, the
// other end of eth0 on the bridge.
func (n *Network) Host(name string, last int) *Host {
	n.tb.Helper()
	h := &Host{Name: name, NS: n.prefix + "-" + name, IP: fmt.Sprintf("192.0.2.%d", last)}
	n.hosts[name] = h
	n.run("ip", "netns", "add", h.NS)
	veth := "v" + name
	n.run("ip", "-n", n.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", h.NS)
	n.run("ip", "-n", n.hub, "link", "set", veth, "master", "br0", "up")
	n.run("ip", "-n", h.NS, "addr", "add", h.IP+"/24", "dev", "eth0")
	n.run("ip", "-n", h.NS, "link", "set", "eth0", "up")
	n.run("ip", "-n", h.NS, "link", "set", "lo", "up")
	return h
}

// LinkDown and LinkUp take a host's link to the bridge down and up.
func (n *Network) LinkDown(h *Host) { n.run("ip", "-n", h.NS, "link", "set", "eth0", "down") }

// LinkUp brings a host's link back.
func (n *Network) LinkUp(h *Host) { n.run("ip", "-n", h.NS, "link", "set", "eth0", "up") }

// remove deletes every namespace (and so every veth) of the network.
func (n *Network) remove() {
	for _, h := range n.hosts {
		if out, err := exec.Command("ip", "netns", "del", h.NS).CombinedOutput(); err != nil {
			n.tb.Errorf("ip netns del %s: %v: %s", h.NS, err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "del", n.hub).CombinedOutput(); err != nil {
		n.tb.Errorf("ip netns del %s: %v: %s", n.hub, err, out)
	}
}

// Start runs a program inside the host's namespace (ip netns exec), stopped when the test
// ends.
func (h *Host) Start(tb testing.TB, name, bin string, args, env []string) *Proc {
	tb.Helper()
	return StartProc(tb, name, "ip", append([]string{"netns", "exec", h.NS, bin}, args...), env)
}

// DialContext dials from inside the host's namespace: the socket is made by an OS thread
// that joined the namespace for the call (a socket stays in the namespace it was made in,
// whichever thread uses it later). For the test's own clients (HTTP, websockets).
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	target, err := os.Open("/run/netns/" + h.NS)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("setns %s: %w", h.NS, err)
	}
	var d net.Dialer
	conn, dialErr := d.DialContext(ctx, network, addr)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays in the wrong namespace: keep it locked, so that Go retires it
		// when this goroutine ends instead of running anything else on it.
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return conn, dialErr
}
