package main

import (
	"math/rand/v2"
	"strings"
)

// prompt is one call the service makes: its text, and the longest answer it lets the model
// write (max_tokens).
type prompt struct {
	text      string
	maxTokens int
}

// estimate is the most a call of p can use: its prompt's tokens and the longest answer. The
// API cannot exceed max_tokens, so the estimate bounds what the call really uses, and the
// charge made at the grant is never short of what the API counts.
func (p prompt) estimate() int { return countTokens(p.text) + p.maxTokens }

var vocabulary = strings.Fields(`the invoice customer refund order shipping delay summary
	contract clause payment account review request answer policy ticket product feature`)

// prompts makes n prompts of random sizes from seed, as a service's traffic might be: seven in
// ten short questions (10 to 60 tokens, answers of at most 40), three in ten long documents
// to summarise (100 to 400 tokens, summaries of at most 200).
func prompts(n int, seed uint64) []prompt {
	rng := rand.New(rand.NewPCG(seed, 1))
	ps := make([]prompt, n)
	for i := range ps {
		words, maxTokens := 10+rng.IntN(51), 40
		if rng.IntN(10) < 3 {
			words, maxTokens = 100+rng.IntN(301), 200
		}
		var b strings.Builder
		for range words {
			b.WriteString(vocabulary[rng.IntN(len(vocabulary))])
			b.WriteByte(' ')
		}
		ps[i] = prompt{text: b.String(), maxTokens: maxTokens}
	}
	return ps
}
