package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
	"github.com/bokeh-go/bokeh-server/storage/redistest"
)

// TestSentinelFailover: bokeh-server on a redis master with one replica and three
// sentinels; kill -9 of the master while a writer streams numbered updates through the API
// and page-like clients watch. Before, the replica is stopped and its link to the master
// cut, so that it is behind when the master dies. Writes during the failover answer 503 and
// leave nothing half written, and resume by themselves on the new master; the pages end at
// the stored state. With --redis-wait-replicas 1 nothing is acknowledged while the replica is
// cut off and every acknowledged update is on the new master; without, the updates
// acknowledged meanwhile are lost (which shows that the test can tell).
func TestSentinelFailover(t *testing.T) {
	b := cluster.Build(t)
	t.Run("WaitForReplica", func(t *testing.T) { sentinelFailover(t, b, 1) })
	t.Run("NoWait", func(t *testing.T) { sentinelFailover(t, b, 0) })
}

// Bounds of the failover test.
const (
	failoverStreamFor = 2 * time.Minute       // the whole stream
	failoverPace      = 5 * time.Millisecond  // between acknowledged writes
	failoverRetry     = 20 * time.Millisecond // after a refused one
)

func sentinelFailover(t *testing.T, b cluster.Binaries, waitReplicas int) {
	const before, after, clients = 60, 60, 3
	const behind = 1500 * time.Millisecond // the replica cut off before the master dies
	g := redistest.StartGroup(t, redistest.GroupOptions{Replicas: 1, Sentinels: 3, AOF: true})
	secrets := t.TempDir()
	pwFile, spwFile := filepath.Join(secrets, "redis"), filepath.Join(secrets, "sentinel")
	for file, pw := range map[string]string{pwFile: g.Password, spwFile: g.SentinelPassword} {
		if err := os.WriteFile(file, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	extra := []string{"--redis-sentinel", strings.Join(g.SentinelAddrs(), ","), "--redis-master", g.MasterName,
		"--redis-password-file", pwFile, "--redis-sentinel-password-file", spwFile}
	if waitReplicas > 0 {
		extra = append(extra, "--redis-wait-replicas", strconv.Itoa(waitReplicas))
	}
	s := cluster.StartServer(t, b, cluster.ServerOptions{Backend: "redis", Extra: extra})
	wantSecretHidden(t, s, g.Password)
	wantSecretHidden(t, s, g.SentinelPassword)

	doc := cluster.NewSeqDoc(t, s.Root, "failover", 1, 20)
	v := cluster.NewValidator()
	for i := range clients {
		dialLive(t, cluster.LiveOptions{Root: s.Root, Topic: doc.Topic, Auth: doc.ReadKey, Reconnect: true,
			Reload: doc.Streams(), Log: v.NewClient(fmt.Sprintf("page %d", i), true)})
	}
	w := &failoverWriter{doc: doc, v: v, stop: make(chan struct{}), quit: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	defer w.abort()
	w.waitAcked(t, before, time.Time{})

	old := g.CurrentMaster(t)
	replica := g.Nodes[0]
	if replica == old {
		replica = g.Nodes[1]
	}
	// Stopped, the replica cannot reconnect when the master drops its link: what the master
	// acknowledges from then on exists nowhere else (not even in socket buffers).
	if err := syscall.Kill(replica.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(replica.Pid(), syscall.SIGCONT)
	onOld := old.Client(0)
	defer onOld.Close()
	if err := onOld.ClientKillByFilter(context.Background(), "TYPE", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	_, ackedBefore := w.results()
	time.Sleep(behind)
	killed := time.Now()
	old.Kill()
	_, ackedBehind := w.results()
	if err := syscall.Kill(replica.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	promoted := g.WaitFailover(t, old)
	switched := time.Since(killed)
	if waitReplicas > 0 {
		// The new master has no replica until the old one is back: its supervisor restarts
		// it, and the sentinels make it a replica of the new master.
		old.Restart(t)
	}
	w.waitAcked(t, after, killed)
	w.finish()

	attempts, acked := w.results()
	var refused []int64
	var other []string
	var recovered time.Duration
	refusedAfterKill := false
	for _, a := range attempts {
		switch {
		case a.status == http.StatusOK:
			if refusedAfterKill && recovered == 0 {
				recovered = a.at.Add(a.took).Sub(killed)
			}
		case a.status == http.StatusServiceUnavailable:
			refused = append(refused, a.seq)
			refusedAfterKill = refusedAfterKill || a.at.Add(a.took).After(killed)
		default:
			other = append(other, fmt.Sprintf("seq %d: %d %v", a.seq, a.status, a.err))
		}
	}
	if len(other) > 0 {
		t.Errorf("writes answered neither 200 nor 503: %v", other)
	}
	if len(refused) == 0 {
		t.Error("no write was refused during the failover")
	}
	caught := waitCaughtUp(t, v)
	sum := v.Check(t, doc.Stored(t))

	// What the new master holds: every write whole (a marker key is in the document's set
	// exactly when its value is there), and, waiting for a replica, every acknowledged one.
	master := g.CurrentMaster(t)
	db := master.Client(2)
	defer db.Close()
	ctx := context.Background()
	members, err := db.SMembers(ctx, "doc:"+doc.DocID).Result()
	if err != nil {
		t.Fatal(err)
	}
	inSet := map[string]bool{}
	for _, m := range members {
		inSet[m] = true
	}
	values, err := db.Keys(ctx, redisModelKey("Range1d", doc.DocID, "*")).Result()
	if err != nil {
		t.Fatal(err)
	}
	hasValue := map[string]bool{}
	for _, k := range values {
		hasValue[k] = true
		if !inSet[k] {
			t.Errorf("half-written update: %s has a value but is not in the document's set", k)
		}
	}
	for m := range inSet {
		if strings.HasPrefix(m, redisModelKey("Range1d", doc.DocID, "")) && !hasValue[m] {
			t.Errorf("half-written update: %s is in the document's set without a value", m)
		}
	}
	cutOff := len(ackedBehind) - len(ackedBefore)
	var lost, lostViaAPI []int64
	for _, seq := range acked {
		id, _ := marker(doc.DocID, seq)
		if !hasValue[redisModelKey("Range1d", doc.DocID, id)] {
			lost = append(lost, seq)
		}
		if st := getModel(t, doc, "Range1d", id); st != http.StatusOK {
			lostViaAPI = append(lostViaAPI, seq)
		}
	}
	switch {
	case waitReplicas > 0 && (len(lost) > 0 || len(lostViaAPI) > 0):
		t.Errorf("acknowledged writes lost in the failover: %v in redis, %v through the API", lost, lostViaAPI)
	case waitReplicas > 0 && cutOff > 1: // one may have been confirmed just before the cut
		t.Errorf("%d writes acknowledged while the replica was cut off", cutOff)
	case waitReplicas == 0 && (cutOff == 0 || len(lost) == 0):
		t.Errorf("%d writes acknowledged while the replica was cut off, %d lost: the test cannot tell", cutOff, len(lost))
	}
	t.Logf("replica cut off for %v, in which %d writes were acknowledged; master %s killed; the sentinels promoted %s after %v; "+
		"writes acknowledged again %v after the kill; %d writes acknowledged, %d attempts refused with 503 (seqs %s); "+
		"acknowledged writes missing on the new master: %d (seqs %s; through the API: %d); pages caught up %v after the last write; validator: %s",
		behind, cutOff, old.Addr, promoted.Addr, switched.Round(time.Millisecond),
		recovered.Round(time.Millisecond), len(acked), len(refused), compactSeqs(refused),
		len(lost), compactSeqs(lost), len(lostViaAPI), caught.Round(time.Millisecond), sum)
}

// failoverWriter streams numbered updates to a SeqDoc, each with a marker model of its own,
// retrying a refused one with the same number (as a script would) and stopping only after
// an acknowledged one, so that storage ends at the last acknowledged write.
type failoverWriter struct {
	doc              *cluster.SeqDoc
	v                *cluster.Validator
	stop, quit, done chan struct{}
	stopOnce         sync.Once
	quitOnce         sync.Once

	mu       sync.Mutex
	attempts []writeAttempt
	acked    []int64
	ackedAt  []time.Time
}

type writeAttempt struct {
	seq    int64
	status int
	err    error
	at     time.Time
	took   time.Duration
}

func (w *failoverWriter) run() {
	defer close(w.done)
	deadline := time.Now().Add(failoverStreamFor)
	// The PlotContext lists the stream and every marker, so that the API serves them.
	children := []string{fmt.Sprintf(`{"type": "ColumnDataSource", "id": %q}`, w.doc.IDs[0])}
	for seq := int64(1); time.Now().Before(deadline); {
		id, m := marker(w.doc.DocID, seq)
		if len(children) == int(seq) {
			children = append(children, fmt.Sprintf(`{"type": "Range1d", "id": %q}`, id))
		}
		ctx := fmt.Sprintf(`{"type": "PlotContext", "id": %q, "attributes": {"id": %q, "doc": %q, "tags": [], "children": [%s]}}`,
			w.doc.Context, w.doc.Context, w.doc.DocID, strings.Join(children, ", "))
		start := time.Now()
		r := w.doc.Write(w.v, 0, seq, m, ctx)
		w.mu.Lock()
		w.attempts = append(w.attempts, writeAttempt{seq: seq, status: r.Status, err: r.Err, at: start, took: r.Took})
		if r.Status == http.StatusOK {
			w.acked = append(w.acked, seq)
			w.ackedAt = append(w.ackedAt, time.Now())
		}
		w.mu.Unlock()
		if r.Status != http.StatusOK {
			select {
			case <-w.quit:
				return
			case <-time.After(failoverRetry):
			}
			continue
		}
		seq++
		select {
		case <-w.stop:
			return
		case <-w.quit:
			return
		case <-time.After(failoverPace):
		}
	}
}

// waitAcked waits until n writes started after since were acknowledged.
func (w *failoverWriter) waitAcked(t *testing.T, n int, since time.Time) {
	t.Helper()
	for {
		w.mu.Lock()
		got := 0
		for _, at := range w.ackedAt {
			if at.After(since) {
				got++
			}
		}
		var last writeAttempt
		if len(w.attempts) > 0 {
			last = w.attempts[len(w.attempts)-1]
		}
		w.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-w.done:
			t.Fatalf("the writer stopped after %v with %d of %d writes acknowledged (last: seq %d, %d %v)",
				failoverStreamFor, got, n, last.seq, last.status, last.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// finish stops the writer after its next acknowledged write and waits for it.
func (w *failoverWriter) finish() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
}

// abort stops the writer at once (a failed test) and waits for it.
func (w *failoverWriter) abort() {
	w.quitOnce.Do(func() { close(w.quit) })
	<-w.done
}

func (w *failoverWriter) results() ([]writeAttempt, []int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.attempts, w.acked
}

// getModel reads one model through the API (GET bokeh/bb/<docid>/<type>/<id>/) and returns
// the status.
func getModel(t *testing.T, d *cluster.SeqDoc, typ, id string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", d.Root+"bokeh/bb/"+d.DocID+"/"+typ+"/"+id+"/", nil)
	req.Header.Set("BOKEHUSER", d.Username)
	req.Header.Set("BOKEHUSER-API-KEY", d.UserKey)
	resp, err := d.HTTP.Do(req)
	if err != nil {
		t.Fatalf("read %s %s: %v", typ, id, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// compactSeqs shortens an ascending list of numbers (with repeats) to ranges.
func compactSeqs(seqs []int64) string {
	var out []string
	prev, start := int64(-2), int64(-2)
	flush := func() {
		switch {
		case start < 0:
		case start == prev:
			out = append(out, strconv.FormatInt(start, 10))
		default:
			out = append(out, fmt.Sprintf("%d-%d", start, prev))
		}
	}
	for _, n := range seqs {
		switch {
		case n == prev:
		case n == prev+1:
			prev = n
		default:
			flush()
			start, prev = n, n
		}
	}
	flush()
	return strings.Join(out, ",")
}
