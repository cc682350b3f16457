package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// Who may do what. Two bearer tokens, each optional:
//
//   - Options.AdminToken guards the routes that change state: pause, resume, reset, PUT limit.
//   - Options.ClientToken guards the routes that spend the service's capacity or show its
//     traffic: /v1/acquire, /v1/jobs (enqueue and results) and the dashboard's /v1/stream.
//     The admin token is accepted there too.
//
// With neither set, every route is open. With only a client token set, the admin routes take
// it as well: no route is left open that was meant to be guarded. The probes, /metrics, the key
// status routes and the dashboard's page itself need no token.

// errNeedClient and errNeedAdmin are the bodies of the 401 answers.
var (
	errNeedClient = errors.New("this route needs Authorization: Bearer <client or admin token>")
	errNeedAdmin  = errors.New("admin routes need Authorization: Bearer <admin token>")
)

// tokens holds the digests of the tokens a guard accepts; the zero value accepts anything.
type tokens [][sha256.Size]byte

func tokensOf(ts ...string) tokens {
	var out tokens
	for _, t := range ts {
		if t != "" {
			out = append(out, sha256.Sum256([]byte(t)))
		}
	}
	return out
}

// allow reports whether r carries one of the tokens. Digests of equal length are compared in
// constant time, every one of them, so the answer's timing says nothing of either token.
func (ts tokens) allow(r *http.Request) bool {
	if len(ts) == 0 {
		return true
	}
	got, ok := bearer(r)
	if !ok {
		return false
	}
	sum := sha256.Sum256([]byte(got))
	match := 0
	for _, t := range ts {
		match |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	return match == 1
}

// bearer returns the token of an "Authorization: Bearer <token>" header (the scheme's case
// does not matter, RFC 9110 §11.1).
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// guard answers 401 unless r carries one of ts.
func guard(ts tokens, why error, h http.HandlerFunc) http.HandlerFunc {
	if len(ts) == 0 {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !ts.allow(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rateltd"`)
			writeError(w, http.StatusUnauthorized, why)
			return
		}
		h(w, r)
	}
}

// admin requires the admin token (or, when only a client token is set, that one).
func (a *API) admin(h http.HandlerFunc) http.HandlerFunc {
	if a.opts.AdminToken == "" {
		return guard(tokensOf(a.opts.ClientToken), errNeedAdmin, h)
	}
	return guard(tokensOf(a.opts.AdminToken), errNeedAdmin, h)
}

// client requires the client or the admin token when a client token is set.
func (a *API) client(h http.HandlerFunc) http.HandlerFunc {
	if a.opts.ClientToken == "" {
		return h
	}
	return guard(tokensOf(a.opts.ClientToken, a.opts.AdminToken), errNeedClient, h)
}
