package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bokeh-go/bokeh-server/api/apitest"
)

// SeqDoc is a document made for the validator: its PlotContext references Streams
// ColumnDataSources, and every write replaces one source's data and sets its "seq".
type SeqDoc struct {
	Root     string // API root the writes go to
	DocID    string
	ReadKey  string // readonlyapikey, as bokehinfo hands it to BokehJS
	WriteKey string // apikey, from getdocapikey
	Topic    string // bokehplot:<docid>
	Context  string // the PlotContext's id
	IDs      []string
	Points   int // data points per write (payload size)
	Username string
	UserKey  string
	HTTP     *http.Client
}

// NewSeqDoc creates (use_doc) the document title with n stream sources at seq 0, through
// the single-user Python client's sequence.
func NewSeqDoc(tb testing.TB, root, title string, n, points int) *SeqDoc {
	tb.Helper()
	return NewSeqDocVia(tb, &http.Client{Timeout: 30 * time.Second}, root, title, n, points)
}

// NewSeqDocVia is NewSeqDoc with the HTTP client of every request (its transport may dial
// from another network namespace, say).
func NewSeqDocVia(tb testing.TB, client *http.Client, root, title string, n, points int) *SeqDoc {
	tb.Helper()
	pc := apitest.NewPyClient(root)
	pc.HTTP.Transport = client.Transport
	pc.UseDoc(tb, title)
	ctx, _ := pc.LoadDocument(tb)
	d := &SeqDoc{Root: pc.Root, DocID: pc.DocID, WriteKey: pc.APIKey, Topic: "bokehplot:" + pc.DocID, Context: ctx.ID,
		Points: points, Username: pc.Username, UserKey: pc.UserAPIKey, HTTP: client}
	var children []string
	var models []string
	for i := 0; i < n; i++ {
		id := "seq-" + strconv.Itoa(i) + "-" + uuid.NewString()[:8]
		d.IDs = append(d.IDs, id)
		children = append(children, fmt.Sprintf(`{"type": "ColumnDataSource", "id": %q}`, id))
		models = append(models, d.model(i, 0))
	}
	plotContext := fmt.Sprintf(`{"type": "PlotContext", "id": %q, "attributes": {"id": %q, "doc": %q, "tags": [], "children": [%s]}}`,
		ctx.ID, ctx.ID, d.DocID, strings.Join(children, ", "))
	body := "[" + plotContext + ", " + strings.Join(models, ", ") + "]"
	if r := pc.Push(tb, []byte(body)); r.Status != http.StatusOK {
		tb.Fatalf("seq doc %q: push %d %.300s", title, r.Status, r.Body)
	}
	var info struct {
		APIKey string `json:"apikey"`
	}
	if r := pc.Do(tb, "GET", "bokeh/bokehinfo/"+d.DocID+"/", nil, true); r.Status != http.StatusOK {
		tb.Fatalf("bokehinfo: %d", r.Status)
	} else {
		r.JSON(tb, &info)
	}
	d.ReadKey = info.APIKey
	if d.ReadKey == "" || d.WriteKey == "" || d.ReadKey == d.WriteKey {
		tb.Fatalf("seq doc keys: read %q write %q", d.ReadKey, d.WriteKey)
	}
	return d
}

// Stream is the validator's name of source i.
func (d *SeqDoc) Stream(i int) Stream { return Stream{Topic: d.Topic, ID: d.IDs[i]} }

// Streams are all the document's streams.
func (d *SeqDoc) Streams() []Stream {
	var out []Stream
	for i := range d.IDs {
		out = append(out, d.Stream(i))
	}
	return out
}

// Via returns the same document written through another API process (shared storage).
func (d *SeqDoc) Via(root string) *SeqDoc {
	c := *d
	c.Root = root
	return &c
}

// model is source i's full model at seq.
func (d *SeqDoc) model(i int, seq int64) string {
	var b strings.Builder
	id := d.IDs[i]
	fmt.Fprintf(&b, `{"type": "ColumnDataSource", "id": %q, "attributes": {"id": %q, "doc": %q, "tags": [], "seq": %d, "column_names": ["x"], "selected": [], "data": {"x": [`,
		id, id, d.DocID, seq)
	for j := 0; j < d.Points; j++ {
		if j > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d.%03d", seq, j%1000)
	}
	b.WriteString("]}}}")
	return b.String()
}

// WriteBody is the bulkupsert body of write seq to source i, plus extra models (JSON).
func (d *SeqDoc) WriteBody(i int, seq int64, extra ...string) []byte {
	return []byte("[" + strings.Join(append([]string{d.model(i, seq)}, extra...), ", ") + "]")
}

// Post sends a bulkupsert body like the Python client; it returns the status (0 with err
// when the request failed). Safe to call from any goroutine.
func (d *SeqDoc) Post(body []byte) (int, error) {
	req, err := http.NewRequest("POST", d.Root+"bokeh/bb/"+d.DocID+"/bulkupsert", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("BOKEHUSER", d.Username)
	req.Header.Set("BOKEHUSER-API-KEY", d.UserKey)
	req.Header.Set("content-type", "application/json")
	resp, err := d.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// WriteResult is the outcome of one write.
type WriteResult struct {
	Seq    int64
	Status int
	Err    error
	Took   time.Duration
}

// Write writes seq to source i and records it with v (Sending, and Acked on 200).
func (d *SeqDoc) Write(v *Validator, i int, seq int64, extra ...string) WriteResult {
	s := d.Stream(i)
	start := time.Now()
	if v != nil {
		v.Sending(s, seq, start)
	}
	st, err := d.Post(d.WriteBody(i, seq, extra...))
	if st == http.StatusOK && v != nil {
		v.Acked(s, seq)
	}
	return WriteResult{Seq: seq, Status: st, Err: err, Took: time.Since(start)}
}

// WriteRange writes seqs from..to (inclusive) to source i one after another, pausing pace
// between writes; it stops at the first failure and returns the results.
func (d *SeqDoc) WriteRange(v *Validator, i int, from, to int64, pace time.Duration) []WriteResult {
	var out []WriteResult
	for seq := from; seq <= to; seq++ {
		r := d.Write(v, i, seq)
		out = append(out, r)
		if r.Status != http.StatusOK {
			return out
		}
		if pace > 0 {
			time.Sleep(pace)
		}
	}
	return out
}

// StoredSeq reads source i's seq from storage: GET bokeh/bb/<docid>/ColumnDataSource/<id>/.
func (d *SeqDoc) StoredSeq(tb testing.TB, i int) int64 {
	tb.Helper()
	req, _ := http.NewRequest("GET", d.Root+"bokeh/bb/"+d.DocID+"/ColumnDataSource/"+d.IDs[i]+"/", nil)
	req.Header.Set("BOKEHUSER", d.Username)
	req.Header.Set("BOKEHUSER-API-KEY", d.UserKey)
	resp, err := d.HTTP.Do(req)
	if err != nil {
		tb.Fatalf("read %s: %v", d.IDs[i], err)
	}
	defer resp.Body.Close()
	// The route answers the model's attributes (§2.4).
	var m struct {
		Seq *int64 `json:"seq"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &m) != nil || m.Seq == nil {
		tb.Fatalf("read %s: %d %.200s", d.IDs[i], resp.StatusCode, b)
	}
	return *m.Seq
}

// Stored reads every stream's seq from storage, for Validator.Check.
func (d *SeqDoc) Stored(tb testing.TB) map[Stream]int64 {
	tb.Helper()
	out := map[Stream]int64{}
	for i := range d.IDs {
		out[d.Stream(i)] = d.StoredSeq(tb, i)
	}
	return out
}
