package storage

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// SetDocExpiry implements DocExpiry.
func (m *Memory) SetDocExpiry(_ context.Context, docid string, at time.Time) error {
	if err := checkID("doc", docid); err != nil {
		return fmt.Errorf("memory: set doc expiry: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.docExpiry[docid] = at
	return nil
}

// ExtendDocExpiry implements DocExpiry.
func (m *Memory) ExtendDocExpiry(_ context.Context, docid string, at time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.docExpiry[docid]; !ok {
		return false, nil
	}
	m.docExpiry[docid] = at
	return true, nil
}

// ClaimExpiredDocs implements DocExpiry.
func (m *Memory) ClaimExpiredDocs(_ context.Context, now time.Time, limit int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var due []string
	for id, at := range m.docExpiry {
		if !at.After(now) {
			due = append(due, id)
		}
	}
	sort.Slice(due, func(i, j int) bool { return m.docExpiry[due[i]].Before(m.docExpiry[due[j]]) })
	if len(due) > limit {
		due = due[:max(limit, 0)]
	}
	for _, id := range due {
		delete(m.docExpiry, id)
	}
	return due, nil
}

// DeleteDoc implements DocExpiry; the document's overlays go at once.
func (m *Memory) DeleteDoc(_ context.Context, docid string) error {
	if err := checkID("doc", docid); err != nil {
		return fmt.Errorf("memory: delete doc: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.docs, docid)
	delete(m.docRecs, docid)
	delete(m.docExpiry, docid)
	for s := range m.overlays {
		if s.DocID == docid {
			delete(m.overlays, s)
		}
	}
	return nil
}
