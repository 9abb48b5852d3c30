package api

import (
	"context"
	"fmt"

	"github.com/bokeh-go/bokeh-server/api/rawjson"
	"github.com/bokeh-go/bokeh-server/storage"
)

// docModels is a document's models as a request sees them: the stored ones with the viewer's
// overlay on top (§3.8), indexed by id.
type docModels struct {
	root   string // id of the PlotContext named by the Doc record
	byID   map[string]storage.Model
	order  []string            // ids in load order, so responses are stable
	fromOv map[string]bool     // ids whose current version comes from the overlay
	refs   map[string][]string // memoised outgoing references
}

// loadModels loads the document's models and, when a TMP was sent, the overlay on top.
func (s *Server) loadModels(ctx context.Context, a *access) (*docModels, error) {
	base, err := s.store.Models(ctx, storage.Scope{DocID: a.doc.DocID})
	if err != nil {
		return nil, fmt.Errorf("load models of %s: %w", a.doc.DocID, err)
	}
	d := &docModels{
		root: a.doc.PlotContextRef.ID,
		byID: make(map[string]storage.Model, len(base)),
		refs: make(map[string][]string, len(base)),
	}
	for _, m := range base {
		d.add(m)
	}
	if a.temp != "" {
		over, err := s.store.Models(ctx, a.scope())
		if err != nil {
			return nil, fmt.Errorf("load overlay of %s: %w", a.doc.DocID, err)
		}
		d.fromOv = make(map[string]bool, len(over))
		for _, m := range over {
			d.add(m)
			d.fromOv[m.ID] = true
		}
	}
	return d, nil
}

func (d *docModels) add(m storage.Model) {
	if _, ok := d.byID[m.ID]; !ok {
		d.order = append(d.order, m.ID)
	}
	d.byID[m.ID] = m
}

// references returns the ids of the document's models that m's attributes refer to: any
// nested object with string "type" and "id" whose id names a model here (§3.1).
func (d *docModels) references(id string) []string {
	if r, ok := d.refs[id]; ok {
		return r
	}
	var out []string
	// Stored attributes were validated on write; an unreadable value written by some
	// other program simply references nothing.
	_ = rawjson.Refs(d.byID[id].Attrs, func(_, ref string) {
		if _, ok := d.byID[ref]; ok && ref != id {
			out = append(out, ref)
		}
	})
	d.refs[id] = out
	return out
}

// closure returns the ids reachable from start (start included), in discovery order.
func (d *docModels) closure(start string) []string {
	if _, ok := d.byID[start]; !ok {
		return nil
	}
	seen := map[string]bool{start: true}
	out := []string{start}
	for i := 0; i < len(out); i++ {
		for _, ref := range d.references(out[i]) {
			if !seen[ref] {
				seen[ref] = true
				out = append(out, ref)
			}
		}
	}
	return out
}

// reachable returns the pruned document (§3.7): the models reachable from the Doc's
// PlotContext. Other PlotContexts are ordinary unreachable models (§8 item 11).
func (d *docModels) reachable() []storage.Model {
	ids := d.closure(d.root)
	out := make([]storage.Model, len(ids))
	for i, id := range ids {
		out[i] = d.byID[id]
	}
	return out
}

// unreachable returns the keys of models not reachable from the root.
func (d *docModels) unreachable() []storage.Model {
	keep := make(map[string]bool)
	for _, id := range d.closure(d.root) {
		keep[id] = true
	}
	var out []storage.Model
	for _, id := range d.order {
		if !keep[id] {
			out = append(out, d.byID[id])
		}
	}
	return out
}
