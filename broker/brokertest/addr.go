package brokertest

import (
	"net"
	"testing"
)

// FreeTCPAddr is a ZeroMQ tcp:// address on a loopback port that was free when asked, for
// tests outside package broker (whose own tests cannot import this package).
func FreeTCPAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return "tcp://" + ln.Addr().String()
}
