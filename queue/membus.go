package queue

// The in-process backend's wake-ups: listeners, broadcasts and notices to one node.

import (
	"context"
	"encoding/hex"
	"sync"
)

// memListener is one Listen call's channel.
type memListener struct{ ch chan Event }

// memListenerRoom is how many events a listener holds unread before it drops new ones.
const memListenerRoom = 256

func (m *Memory) Broadcast(_ context.Context, ev Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ls := range m.listeners {
		for l := range ls {
			if !l.send(ev) && numbered(ev.Kind) {
				m.dropped = true
			}
		}
	}
	return nil
}

// Missed reports whether a listener had no room for a wake-up that may make a key due earlier
// since the last call.
func (m *Memory) Missed(context.Context) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.dropped
	m.dropped = false
	return d, nil
}

func (m *Memory) Notify(_ context.Context, node []byte, ev Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for l := range m.listeners[hex.EncodeToString(node)] {
		l.send(ev)
	}
	return nil
}

// send delivers ev unless the listener's buffer is full (events are only hints), and reports
// whether it did.
func (l *memListener) send(ev Event) bool {
	select {
	case l.ch <- ev:
		return true
	default:
		return false
	}
}

func (m *Memory) Listen(node []byte) (<-chan Event, func()) {
	id := hex.EncodeToString(node)
	l := &memListener{ch: make(chan Event, memListenerRoom)}
	m.mu.Lock()
	if m.listeners[id] == nil {
		m.listeners[id] = map[*memListener]struct{}{}
	}
	m.listeners[id][l] = struct{}{}
	m.mu.Unlock()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			m.mu.Lock()
			delete(m.listeners[id], l)
			if len(m.listeners[id]) == 0 {
				delete(m.listeners, id)
			}
			m.mu.Unlock()
			close(l.ch)
		})
	}
	return l.ch, stop
}
