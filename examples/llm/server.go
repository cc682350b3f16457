package main

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// completionRequest is what the fake API takes: a prompt and the most tokens the answer may
// have, as a real completion API takes them.
type completionRequest struct {
	Prompt    string `json:"prompt"`
	MaxTokens int    `json:"max_tokens"`
}

// usage is what a call used, as the API reports it.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// completionResponse is the fake API's answer to a call it served.
type completionResponse struct {
	Text  string `json:"text"`
	Usage usage  `json:"usage"`
}

// countTokens is the fake API's tokenizer: one token a word. The callers count a prompt's
// tokens the same way, as real clients count them with the model's tokenizer.
func countTokens(s string) int { return len(strings.Fields(s)) }

// fakeLLM is an LLM API with the limits of a real one: at most maxRequests calls and
// maxTokens tokens in any interval of length window (a sliding window), counting each call's
// tokens (prompt and completion) at the moment the call arrives. A call past either limit is
// answered 429 with Retry-After and counts nothing. The answer's length is random, from 1 to
// the call's max_tokens (the same for the same prompt and seed), and takes perToken per token
// to write.
type fakeLLM struct {
	window                 time.Duration
	maxRequests, maxTokens int
	perToken               time.Duration
	seed                   uint64

	mu      sync.Mutex // guards the fields below; written and read by the handler
	calls   []served   // the calls served within the last window, oldest first
	refused int        // calls answered 429
}

// served is one call the fake API served: when it arrived and the tokens it used.
type served struct {
	at     time.Time
	tokens int
}

// start serves f on a local port; close the server when done.
func (f *fakeLLM) start() *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/completions", f.complete)
	return httptest.NewServer(mux)
}

// tooMany reports how many calls were answered 429.
func (f *fakeLLM) tooMany() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused
}

func (f *fakeLLM) complete(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.MaxTokens < 1 {
		http.Error(w, `{"error": "want {\"prompt\": \"...\", \"max_tokens\": n >= 1}"}`, http.StatusBadRequest)
		return
	}
	u, ok := f.admit(w.Header(), req)
	if !ok {
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprintln(w, `{"error": "rate limit exceeded"}`)
		return
	}
	select { // writing the answer takes time
	case <-time.After(time.Duration(u.CompletionTokens) * f.perToken):
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(completionResponse{Text: strings.Repeat("word ", u.CompletionTokens), Usage: u})
}

// admit decides the call's usage and counts it, or refuses it when it would take either
// limit over within the window ending now. It sets the x-ratelimit-* headers either way, and
// Retry-After when it refuses.
func (f *fakeLLM) admit(hdr http.Header, req completionRequest) (usage, bool) {
	h := fnv.New64a()
	h.Write([]byte(req.Prompt))
	rng := rand.New(rand.NewPCG(f.seed, h.Sum64()))
	u := usage{PromptTokens: countTokens(req.Prompt), CompletionTokens: 1 + rng.IntN(req.MaxTokens)}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for len(f.calls) > 0 && !f.calls[0].at.After(now.Add(-f.window)) {
		f.calls = f.calls[1:]
	}
	tokens := 0
	for _, c := range f.calls {
		tokens += c.tokens
	}
	ok := len(f.calls)+1 <= f.maxRequests && tokens+u.TotalTokens <= f.maxTokens
	if ok {
		f.calls = append(f.calls, served{now, u.TotalTokens})
		tokens += u.TotalTokens
	} else {
		f.refused++
		wait := f.window // a call larger than the limit: never
		if len(f.calls) > 0 {
			wait = f.calls[0].at.Add(f.window).Sub(now)
		}
		hdr.Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	}
	hdr.Set("x-ratelimit-limit-requests", strconv.Itoa(f.maxRequests))
	hdr.Set("x-ratelimit-limit-tokens", strconv.Itoa(f.maxTokens))
	hdr.Set("x-ratelimit-remaining-requests", strconv.Itoa(f.maxRequests-len(f.calls)))
	hdr.Set("x-ratelimit-remaining-tokens", strconv.Itoa(f.maxTokens-tokens))
	return u, ok
}
