package processor

import "github.com/rateltd/rateltd/queue"

// keepLineSuffix keeps sfx, what follows w's ticket in its entry of a fair line, for a cancel;
// nothing for a line served first come first served (no allocation on that path).
func (w *waiter) keepLineSuffix(sfx []byte) {
	if len(sfx) > 0 {
		p := new([]byte)
		*p = sfx
		w.lineSuffix.Store(p)
	}
}

// cancelTicket is w's ticket as a cancel takes it out of its line: with its round, when its
// line is served in fair shares.
func (w *waiter) cancelTicket() *queue.Ticket {
	t := *w.t
	if sfx := w.lineSuffix.Load(); sfx != nil {
		t.LineSuffix = *sfx
	}
	return &t
}
