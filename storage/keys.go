package storage

import (
	"fmt"
	"strings"
)

// Every backend applies the same key rules so that the contract tests can hold them all to
// one behaviour, even where a backend (memory) could store anything.

// validPart reports whether s can be embedded in a ':'-separated storage key and split back
// out of it.
func validPart(s string) bool { return s != "" && !strings.Contains(s, ":") }

// validKey reports whether k could ever have been stored. Get and Delete skip invalid keys
// instead of failing: such a model cannot exist, so "missing" is the truthful answer.
func validKey(k ModelKey) bool { return validPart(k.Type) && validPart(k.ID) }

// checkScope rejects scopes that could alias another scope in a backend's key space: the
// overlay name <docid>:<temp> is only unambiguous when temp has no ':'.
func checkScope(s Scope) error {
	if s.DocID == "" {
		return fmt.Errorf("empty docid: %w", ErrInvalidKey)
	}
	if s.IsOverlay() && !validPart(s.Temp) {
		return fmt.Errorf("overlay temp %q: %w", s.Temp, ErrInvalidKey)
	}
	return nil
}

// checkModels rejects a write in which any model's type or id is invalid, before anything
// is written.
func checkModels(models []Model) error {
	for _, m := range models {
		if !validKey(m.Key()) {
			return fmt.Errorf("model %q:%q: %w", m.Type, m.ID, ErrInvalidKey)
		}
	}
	return nil
}

// checkID rejects an empty docid or username, which would name no record.
func checkID(kind, id string) error {
	if id == "" {
		return fmt.Errorf("empty %s: %w", kind, ErrInvalidKey)
	}
	return nil
}

// modelField is the "<type>:<id>" name of a model inside one scope (shelve keys, redis overlay
// hash fields).
func modelField(k ModelKey) string { return k.Type + ":" + k.ID }

// parseModelField splits a modelField; type never contains ':', so the first one separates.
func parseModelField(f string) (ModelKey, bool) {
	typ, id, ok := strings.Cut(f, ":")
	if !ok || typ == "" || id == "" {
		return ModelKey{}, false
	}
	return ModelKey{Type: typ, ID: id}, true
}

// recordKey is the original's server-model key of record id of kind "doc" or "user".
func recordKey(kind, id string) string { return "model:" + kind + ":" + id }
