package api

import (
	"errors"
	"fmt"

	"github.com/bokeh-go/bokeh-server/api/rawjson"
	"github.com/bokeh-go/bokeh-server/storage"
)

// incoming is one model of a write request, parsed and validated but not yet merged.
type incoming struct {
	typ        string
	subtype    string
	id         string
	attrs      []rawjson.Field // without "id" and "doc"
	bareTokens bool            // attrs hold bare NaN/Infinity (PUT/PATCH/POST bodies)
}

// parseBulk reads a bulkupsert body (§2.4 #8): an array of {"type", "id", "attributes",
// optional "subtype"}. The model id is attributes.id, falling back to the top-level id.
// The whole body is checked, in one pass, before anything is stored.
func parseBulk(body []byte) ([]incoming, rawjson.Info, error) {
	out := make([]incoming, 0, 4)
	i := 0
	info, err := rawjson.ArrayOfObjects(body, "attributes", func(top, attrs []rawjson.Field) error {
		m, err := parseModel(top, attrs)
		if err != nil {
			return fmt.Errorf("model %d: %w", i, err)
		}
		out = append(out, m)
		i++
		return nil
	})
	if err != nil {
		var se *rawjson.SyntaxError
		if errors.As(err, &se) {
			return nil, info, fmt.Errorf("body must be a JSON array of models: %w", err)
		}
		return nil, info, err
	}
	return out, info, nil
}

func parseModel(top, attrs []rawjson.Field) (incoming, error) {
	var m incoming
	var topID string
	hasAttrs := false
	for _, f := range top {
		switch f.Key {
		case "type":
			m.typ, _ = rawjson.String(f.Value)
		case "subtype":
			m.subtype, _ = rawjson.String(f.Value)
		case "id":
			topID, _ = rawjson.String(f.Value)
		case "attributes":
			if len(f.Value) == 0 || f.Value[0] != '{' {
				return m, errors.New("attributes must be a JSON object")
			}
			hasAttrs = true
		}
	}
	if err := validName("type", m.typ); err != nil {
		return m, err
	}
	if !hasAttrs {
		attrs = nil
	}
	m.attrs, m.id = withoutIDDoc(attrs)
	if m.id == "" {
		m.id = topID
	}
	if err := validName("id", m.id); err != nil {
		return m, err
	}
	return m, nil
}

// withoutIDDoc drops "id", "doc" and Backbone's "noop" marker (§2.4 #4) and returns the id.
func withoutIDDoc(fields []rawjson.Field) ([]rawjson.Field, string) {
	var id string
	out := fields[:0:0]
	for _, f := range fields {
		switch f.Key {
		case "id":
			id, _ = rawjson.String(f.Value)
		case "doc", "noop":
		default:
			out = append(out, f)
		}
	}
	return out, id
}

// appendFullModel appends {"type", ["subtype",] "id", "attributes"} (§3.1).
func appendFullModel(dst []byte, m storage.Model, subtype string) []byte {
	dst = append(dst, `{"type": `...)
	dst = rawjson.AppendString(dst, m.Type)
	if subtype != "" {
		dst = append(dst, `, "subtype": `...)
		dst = rawjson.AppendString(dst, subtype)
	}
	dst = append(dst, `, "id": `...)
	dst = rawjson.AppendString(dst, m.ID)
	dst = append(dst, `, "attributes": `...)
	dst = append(dst, m.Attrs...)
	return append(dst, '}')
}

// appendModelList appends a JSON array of full models.
func appendModelList(dst []byte, models []storage.Model, subtypes []string) []byte {
	dst = append(dst, '[')
	for i, m := range models {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		st := ""
		if subtypes != nil {
			st = subtypes[i]
		}
		dst = appendFullModel(dst, m, st)
	}
	return append(dst, ']')
}

// modelPush is the modelpush message text (§5.4), also the bulkupsert response (§2.4 #8).
func modelPush(models []storage.Model, subtypes []string) []byte {
	size := 64
	for _, m := range models {
		size += len(m.Attrs) + len(m.Type) + len(m.ID) + 64
	}
	out := make([]byte, 0, size)
	out = append(out, `{"msgtype": "modelpush", "modelspecs": `...)
	out = appendModelList(out, models, subtypes)
	return append(out, '}')
}
