package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/bokeh-go/bokeh-server/api/apitest"
	"github.com/bokeh-go/bokeh-server/cmd/internal/cluster"
)

// TestWebsocketAuthMatrix checks the subscribe rule of §5.3 (0.8.2 key check, temporary ids
// by shape, user topics with that user's credentials, other kinds open) for every kind of caller, on unpublished and published
// documents, against a real worker: each allow and each deny, and a refused subscribe never
// closes the socket.
func TestWebsocketAuthMatrix(t *testing.T) {
	s := cluster.StartServer(t, cluster.Build(t), cluster.ServerOptions{MultiUser: true})
	owner := apitest.NewPyClient(s.Root)
	owner.Register(t, "wsowner", "pw")
	docs := map[bool]*apitest.PyClient{}
	keys := map[bool][2]string{}
	for _, published := range []bool{false, true} {
		c := apitest.NewPyClient(s.Root)
		c.Username, c.UserAPIKey = owner.Username, owner.UserAPIKey
		title := "ws-unpublished"
		if published {
			title = "ws-published"
		}
		c.UseDoc(t, title)
		var info struct {
			APIKey string `json:"apikey"`
		}
		c.Do(t, "GET", "bokeh/bokehinfo/"+c.DocID+"/", nil, true).JSON(t, &info)
		if published {
			c.Publish(t)
		}
		docs[published], keys[published] = c, [2]string{c.APIKey, info.APIKey}
	}
	str := func(s string) *string { return &s }
	ws := cluster.Dial(t, cluster.WSURL(t, s.Root), true)
	cells, wrong := 0, 0
	for _, published := range []bool{false, true} {
		docid := docs[published].DocID
		rw, ro := keys[published][0], keys[published][1]
		other := keys[!published][0]
		for _, c := range []struct {
			name  string
			topic string
			auth  *string
			allow bool
		}{
			{"write key", "bokehplot:" + docid, str(rw), true},
			{"read-only key", "bokehplot:" + docid, str(ro), true},
			{"another doc's key", "bokehplot:" + docid, str(other), false},
			{"wrong key", "bokehplot:" + docid, str("not-a-key"), false},
			{"empty key", "bokehplot:" + docid, str(""), false},
			{"no key (null)", "bokehplot:" + docid, nil, false}, // published plays no role (§3.8)
			{"unknown doc", "bokehplot:no-such-doc", str(rw), false},
			{"temporary id", "bokehplot:temporary-0123456789ABCDEF0123456789ABCDEF", nil, true},
			{"malformed temporary id", "bokehplot:temporary-zz", nil, false},
			{"user topic without credentials", "bokehuser:wsowner", nil, false},
			{"user topic with another's key", "bokehuser:wsowner", str(rw), false},
			{"user topic with the user's key", "bokehuser:wsowner", str(owner.UserAPIKey), true},
			{"debug topic", "debug:debug", str(""), true},
		} {
			cells++
			reply := ws.Subscribe(t, c.topic, c.auth)
			ok := strings.HasPrefix(reply, c.topic+":") && strings.Contains(reply, `"subscribesuccess"`)
			refused := strings.HasPrefix(reply, c.topic+":") && strings.Contains(reply, `"msgtype": "error"`)
			if (c.allow && !ok) || (!c.allow && !refused) {
				wrong++
				t.Errorf("published=%v %s (%s): reply %s", published, c.name, c.topic, reply)
			}
		}
	}
	// The socket survived every refusal and still delivers.
	docs[false].Push(t, []byte(`[{"type": "Range1d", "attributes": {"id": "after-refusals"}}]`))
	for {
		frame, ok := ws.Next(t, 10*time.Second)
		if !ok {
			t.Fatalf("no push after the refusals (%v)", ws.Err())
		}
		if strings.Contains(frame, "after-refusals") {
			break
		}
	}
	t.Logf("websocket auth matrix: %d cells, %d wrong", cells, wrong)
}
