package redistest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bokeh-go/bokeh-server/storage"
)

// Timing of the sentinels Group starts: a master that does not answer for DownAfter is
// failed over (Redis's default is 30 s; tests want it in about two seconds).
const (
	DownAfter       = time.Second
	failoverTimeout = 10 * time.Second
	groupWait       = 30 * time.Second
)

// Group is a replicated redis watched by Redis Sentinel: a master, its replicas and the
// sentinels, every one a real redis-server process on loopback.
type Group struct {
	MasterName       string
	Password         string // the master's and replicas' requirepass (and masterauth)
	SentinelPassword string // the sentinels' requirepass
	Nodes            []*Server
	Sentinels        []*Server
}

// GroupOptions describe a Group. Passwords are made up when empty.
type GroupOptions struct {
	Replicas, Sentinels int // at least 1 and 1
	Password            string
	SentinelPassword    string
	AOF                 bool // the data nodes' append-only file, fsynced before each reply
}

// StartGroup starts a master, its replicas and the sentinels (quorum: a majority of them),
// and returns once the replicas are in sync and every sentinel knows every replica and
// every other sentinel, so that a failover can happen from then on. Everything is killed
// when the test ends.
func StartGroup(tb testing.TB, o GroupOptions) *Group {
	tb.Helper()
	if o.Replicas < 1 || o.Sentinels < 1 {
		tb.Fatalf("redistest: a group needs replicas and sentinels, not %d and %d", o.Replicas, o.Sentinels)
	}
	if o.Password == "" {
		o.Password = "data-pw-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	if o.SentinelPassword == "" {
		o.SentinelPassword = "sentinel-pw-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	g := &Group{MasterName: "bokeh", Password: o.Password, SentinelPassword: o.SentinelPassword}
	nodeOpts := []Option{WithPassword(o.Password)}
	if o.AOF {
		nodeOpts = append(nodeOpts, WithAOF())
	}
	master := Start(tb, nodeOpts...)
	g.Nodes = append(g.Nodes, master)
	for range o.Replicas {
		g.Nodes = append(g.Nodes, Start(tb, append(nodeOpts, WithReplicaOf(master))...))
	}
	quorum := o.Sentinels/2 + 1
	for range o.Sentinels {
		s := newServer(tb, []Option{WithPassword(o.SentinelPassword)})
		s.sentinel = fmt.Sprintf(`sentinel sentinel-pass %s
sentinel monitor %s 127.0.0.1 %d %d
sentinel auth-pass %s %s
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
sentinel parallel-syncs %s 1
`, storage.QuoteRedisConfig(o.SentinelPassword), g.MasterName, master.Port, quorum, g.MasterName, storage.QuoteRedisConfig(o.Password),
			g.MasterName, DownAfter.Milliseconds(), g.MasterName, failoverTimeout.Milliseconds(), g.MasterName)
		s.launch(tb)
		g.Sentinels = append(g.Sentinels, s)
	}
	WaitSynced(tb, master, o.Replicas)
	deadline := time.Now().Add(groupWait)
	for _, s := range g.Sentinels {
		for {
			c := g.sentinelClient(s)
			m, err := c.Master(context.Background(), g.MasterName).Result()
			c.Close()
			if err == nil && m["num-slaves"] == strconv.Itoa(o.Replicas) && m["num-other-sentinels"] == strconv.Itoa(o.Sentinels-1) {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("redistest: sentinel %s does not know the group after %v (%v, %v); log:\n%s", s.Addr, groupWait, m, err, s.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return g
}

// SentinelAddrs are the sentinels' host:port addresses.
func (g *Group) SentinelAddrs() []string {
	var out []string
	for _, s := range g.Sentinels {
		out = append(out, s.Addr)
	}
	return out
}

// Node returns the data node listening on addr (host:port), or nil.
func (g *Group) Node(addr string) *Server {
	for _, n := range g.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// sentinelClient is a client of sentinel s; the caller closes it.
func (g *Group) sentinelClient(s *Server) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Password: g.SentinelPassword, Protocol: 2,
		DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1, DisableIdentity: true})
}

// Client returns a client of database db of the server, with its password; the caller
// closes it.
func (s *Server) Client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.Password, DB: db, Protocol: 2,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1, DisableIdentity: true})
}

// Masters returns what every sentinel reports as the master's address ("" for a sentinel
// that does not answer).
func (g *Group) Masters() []string {
	var out []string
	for _, s := range g.Sentinels {
		c := g.sentinelClient(s)
		addr, err := c.GetMasterAddrByName(context.Background(), g.MasterName).Result()
		c.Close()
		if err != nil || len(addr) != 2 {
			out = append(out, "")
			continue
		}
		out = append(out, net.JoinHostPort(addr[0], addr[1]))
	}
	return out
}

// CurrentMaster returns the data node every sentinel reports as the master.
func (g *Group) CurrentMaster(tb testing.TB) *Server {
	tb.Helper()
	masters := g.Masters()
	for _, m := range masters {
		if m != masters[0] {
			tb.Fatalf("redistest: the sentinels disagree on the master: %v", masters)
		}
	}
	n := g.Node(masters[0])
	if n == nil {
		tb.Fatalf("redistest: the sentinels report the master %q, which is none of the group's nodes", masters[0])
	}
	return n
}

// WaitFailover waits until every sentinel reports a master other than old and that node
// says it is a master, and returns it.
func (g *Group) WaitFailover(tb testing.TB, old *Server) *Server {
	tb.Helper()
	deadline := time.Now().Add(groupWait)
	for {
		masters := g.Masters()
		agreed := masters[0] != "" && masters[0] != old.Addr
		for _, m := range masters {
			agreed = agreed && m == masters[0]
		}
		if n := g.Node(masters[0]); agreed && n != nil && role(n) == "master" {
			return n
		}
		if time.Now().After(deadline) {
			var logs []string
			for _, s := range g.Sentinels {
				logs = append(logs, s.Addr+":\n"+s.Log())
			}
			tb.Fatalf("redistest: no failover from %s within %v: sentinels report %v; logs:\n%s",
				old.Addr, groupWait, masters, strings.Join(logs, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitSynced waits until master has n replicas online and caught up with its writes.
func WaitSynced(tb testing.TB, master *Server, n int) {
	tb.Helper()
	c := master.Client(0)
	defer c.Close()
	deadline := time.Now().Add(groupWait)
	for {
		// WAIT returns once n replicas have this connection's writes (one replication round
		// trip when they are online); a write of its own makes sure they apply the stream.
		got, err := int64(0), c.Set(context.Background(), "redistest:synced", time.Now().UnixNano(), 0).Err()
		if err == nil {
			got, err = c.Wait(context.Background(), n, 500*time.Millisecond).Result()
		}
		if err == nil && got >= int64(n) {
			return
		}
		if time.Now().After(deadline) {
			info, _ := c.Info(context.Background(), "replication").Result()
			tb.Fatalf("redistest: %s has %d of %d replicas in sync after %v (%v):\n%s", master.Addr, got, n, groupWait, err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// role is what node n says it is (INFO replication), "" when it does not answer.
func role(n *Server) string {
	c := n.Client(0)
	defer c.Close()
	info, err := c.Info(context.Background(), "replication").Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "role:"); ok {
			return v
		}
	}
	return ""
}
