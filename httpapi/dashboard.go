package httpapi

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed web
var web embed.FS

// Dashboard adds the dashboard at / (one page, its assets embedded) and its live feed,
// GET /v1/stream?q=&offset=0&limit=25: server-sent events, each a Page of the keys whose name
// contains q, every interval.
func (a *API) Dashboard(interval time.Duration) {
	if interval <= 0 {
		interval = time.Second
	}
	sub, _ := fs.Sub(web, "web")
	a.mux.Handle("GET /", http.FileServerFS(sub))
	a.mux.HandleFunc("GET /v1/stream", a.client(func(w http.ResponseWriter, r *http.Request) { a.stream(w, r, interval) }))
}

// Page is one frame of the dashboard's feed.
type Page struct {
	Total  int          `json:"total"`
	Offset int          `json:"offset"`
	Keys   []StatusJSON `json:"keys"`
	At     time.Time    `json:"at"`
}

func (a *API) stream(w http.ResponseWriter, r *http.Request, interval time.Duration) {
	q := r.URL.Query()
	offset, err1 := strconv.Atoi(cmp.Or(q.Get("offset"), "0"))
	limit, err2 := strconv.Atoi(cmp.Or(q.Get("limit"), "25"))
	if err1 != nil || err2 != nil || offset < 0 || limit < 1 || limit > 200 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("offset from 0 and limit from 1 to 200, got %q and %q", q.Get("offset"), q.Get("limit")))
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("streaming unsupported"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		page, err := a.page(r.Context(), q.Get("q"), offset, limit)
		if err != nil {
			b, _ := json.Marshal(Error{Error: err.Error()})
			fmt.Fprintf(w, "event: failure\ndata: %s\n\n", b)
		} else {
			b, _ := json.Marshal(page)
			fmt.Fprintf(w, "data: %s\n\n", b)
		}
		flusher.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// page lists every key with state whose name contains q, in order, and reads the status of
// those from offset to offset+limit.
func (a *API) page(ctx context.Context, q string, offset, limit int) (Page, error) {
	seen := map[string]bool{}
	var keys []string
	cursor := ""
	for {
		batch, next, err := a.c.ListKeys(ctx, cursor, 1000)
		if err != nil {
			return Page{}, err
		}
		for _, k := range batch {
			if !seen[k] && strings.Contains(k, q) {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	slices.Sort(keys)
	p := Page{Total: len(keys), Offset: offset, Keys: []StatusJSON{}, At: time.Now().UTC()}
	from := min(offset, len(keys))
	to := from + min(limit, len(keys)-from) // not offset+limit: it may overflow
	for _, k := range keys[from:to] {
		st, err := a.c.Status(ctx, k)
		if err != nil {
			return Page{}, err
		}
		p.Keys = append(p.Keys, StatusToJSON(st))
	}
	return p, nil
}
