package lua

import (
	"fmt"
	"strings"
)

// A script as a Redis function. Redis runs an EVALSHA's script from its first line every time:
// each call defines every helper again, a closure per helper over the script's state (measured
// by bench's BenchmarkScriptCost: about as long as redis_rate's whole call, before a key is
// read). A function library runs its top level once, when loaded, and each FCALL runs only the
// function it registered. Library turns a script into such a library without a change to its
// meaning: the top-level helper definitions (local function) are made once, at load; every
// other top-level statement runs on each call, in order, inside the function; a top-level local
// becomes a library-level one that each call assigns (to nil when it had no value), so that a
// call starts from the state a fresh EVAL would — but for the locals a script marks as kept
// between calls (keptMark). The call's state thus lives in upvalues shared by the helpers,
// which is safe because Redis runs one script or function at a time and none calls another.
//
// A top-level statement opens in the first column outside every block and bracket (the layout
// of every script here). The per-call statements run as steps, functions of at most
// maxStepUpvalues library locals each (Lua 5.1 allows a function 60 upvalues); a return among
// them (outside a function they define) ends the call with its values.

// keptMark reports whether the first line of a top-level local declaration ends with the mark
// "-- kept between calls": its locals are given their values once, at load, and keep what the
// calls leave in them. For state that a call may reuse from the one before (limits.lua's limit,
// read again only when another is given); a script, run from its first line each time, starts
// from the values.
func keptMark(src string) bool {
	first, _, _ := strings.Cut(src, "\n")
	return strings.HasSuffix(strings.TrimSpace(first), "-- kept between calls")
}

// libraryStatement is one top-level statement of a script: its source, and, for a local
// declaration, its names and the source of its values ("" without values).
type libraryStatement struct {
	src    string
	def    bool     // local function
	names  []string // local declaration
	values string
}

// maxStepUpvalues bounds the library locals one step reads.
const maxStepUpvalues = 50

// Library returns src as the source of a Redis function library named name that registers the
// function name, which runs src on each call (see above). It fails on a script it cannot carry
// over with the same meaning: one that declares a top-level name twice (a statement between
// the two would read the second).
func Library(name, src string) (string, error) {
	body, err := libraryBody(src)
	if err != nil {
		return "", fmt.Errorf("lua: %s: %w", name, err)
	}
	return named(name, body), nil
}

// named is the library of body (libraryBody's) under name.
func named(name, body string) string {
	return fmt.Sprintf("#!lua name=%s\n%sredis.register_function(%q, step.run)\n", name, body, name)
}

// libraryBody is what a library of src holds but its name: the library-level locals, the
// helpers, the steps and step.run, which runs them.
func libraryBody(src string) (string, error) {
	stmts, err := topLevel(src)
	if err != nil {
		return "", err
	}
	var lib strings.Builder
	lib.WriteString("local KEYS, ARGV\n")
	calls, declared, err := hoist(&lib, stmts)
	if err != nil {
		return "", err
	}
	lib.WriteString("local step = {}\n")
	var run strings.Builder
	for i, st := range steps(calls, declared) {
		fmt.Fprintf(&lib, "step[%d] = function()\n", i+1)
		for _, c := range st {
			lib.WriteString(markReturns(c))
		}
		lib.WriteString("end\n")
		fmt.Fprintf(&run, "  local done, reply = step[%d]()\n  if done then return reply end\n", i+1)
	}
	// A field, not a local: a script's main function holds at most 200 locals, and the biggest
	// scripts are near that.
	fmt.Fprintf(&lib, "step.run = function(keys, args)\n  KEYS, ARGV = keys, args\n%send\n", run.String())
	return lib.String(), nil
}

// hoist writes to lib what of stmts the library holds: the helpers, the declarations of the
// top-level locals, the kept ones with their values. It returns the statements each call runs,
// in order (a declaration's as the assignment of its values), and the library's locals.
func hoist(lib *strings.Builder, stmts []libraryStatement) (calls []string, declared map[string]bool, err error) {
	declared = map[string]bool{"KEYS": true, "ARGV": true}
	declare := func(n string) error {
		if declared[n] {
			return fmt.Errorf("top-level %s declared twice", n)
		}
		declared[n] = true
		return nil
	}
	for _, s := range stmts {
		switch {
		case s.def:
			if err := declare(s.names[0]); err != nil {
				return nil, nil, err
			}
			lib.WriteString(s.src)
		case s.names != nil:
			// KEYS and ARGV are the library's already: a script that declares them
			// (admit_many.lua, whose locals stand in for them) assigns them.
			var fresh []string
			for _, n := range s.names {
				if n == "KEYS" || n == "ARGV" {
					continue
				}
				if err := declare(n); err != nil {
					return nil, nil, err
				}
				fresh = append(fresh, n)
			}
			list := strings.Join(s.names, ", ")
			if keptMark(s.src) {
				if len(fresh) != len(s.names) {
					return nil, nil, fmt.Errorf("%s kept between calls must be new locals", list)
				}
				lib.WriteString(s.src)
				continue
			}
			if len(fresh) > 0 {
				fmt.Fprintf(lib, "local %s\n", strings.Join(fresh, ", "))
			}
			if s.values == "" {
				calls = append(calls, list+" = nil\n")
			} else {
				calls = append(calls, list+" = "+s.values)
			}
		default:
			calls = append(calls, s.src)
		}
	}
	return calls, declared, nil
}

// steps cuts calls, the per-call statements, into runs of consecutive statements that read at
// most maxStepUpvalues of the library's locals (declared) between them.
func steps(calls []string, declared map[string]bool) [][]string {
	var out [][]string
	var cur []string
	up := map[string]bool{}
	for _, c := range calls {
		used := map[string]bool{}
		for _, n := range identifiers(c) {
			if declared[n] {
				used[n] = true
			}
		}
		fresh := 0
		for n := range used {
			if !up[n] {
				fresh++
			}
		}
		if len(cur) > 0 && len(up)+fresh > maxStepUpvalues {
			out, cur, up = append(out, cur), nil, map[string]bool{}
		}
		for n := range used {
			up[n] = true
		}
		cur = append(cur, c)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// token is a lexical token of Lua source: a name or keyword, a string, a number or a
// punctuation mark (comments and spaces are skipped); at is its offset, bol whether it opens
// its line.
type token struct {
	text string
	at   int
	bol  bool
	name bool
}

// tokens splits src into Lua 5.1 tokens.
func tokens(src string) ([]token, error) {
	var out []token
	bol := true
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			bol = true
			i++
			continue
		case c == ' ' || c == '\t' || c == '\r':
			i++
			continue
		case strings.HasPrefix(src[i:], "--"):
			if n := longBracket(src[i+2:]); n >= 0 {
				end := strings.Index(src[i+2+n:], "]"+strings.Repeat("=", n-2)+"]")
				if end < 0 {
					return nil, fmt.Errorf("lua: unclosed long comment at %d", i)
				}
				i += 2 + n + end + n
			} else if j := strings.IndexByte(src[i:], '\n'); j >= 0 {
				i += j
			} else {
				i = len(src)
			}
			continue
		}
		start, atBol := i, bol
		bol = false
		switch {
		case isNameByte(c) && !(c >= '0' && c <= '9'):
			for i < len(src) && isNameByte(src[i]) {
				i++
			}
			out = append(out, token{text: src[start:i], at: start, bol: atBol, name: true})
			continue
		case c >= '0' && c <= '9':
			for i < len(src) && (isNameByte(src[i]) || src[i] == '.' ||
				((src[i] == '-' || src[i] == '+') && (src[i-1] == 'e' || src[i-1] == 'E') && !strings.HasPrefix(src[start:], "0x"))) {
				i++
			}
		case c == '"' || c == '\'':
			for i++; i < len(src) && src[i] != c; i++ {
				if src[i] == '\\' {
					i++
				}
			}
			if i >= len(src) {
				return nil, fmt.Errorf("lua: unclosed string at %d", start)
			}
			i++
		case c == '[' && longBracket(src[i:]) >= 0:
			n := longBracket(src[i:])
			end := strings.Index(src[i+n:], "]"+strings.Repeat("=", n-2)+"]")
			if end < 0 {
				return nil, fmt.Errorf("lua: unclosed long string at %d", i)
			}
			i += n + end + n
		case strings.HasPrefix(src[i:], "..."):
			i += 3
		case strings.HasPrefix(src[i:], "..") || strings.HasPrefix(src[i:], "==") || strings.HasPrefix(src[i:], "~=") ||
			strings.HasPrefix(src[i:], "<=") || strings.HasPrefix(src[i:], ">="):
			i += 2
		default:
			i++
		}
		out = append(out, token{text: src[start:i], at: start, bol: atBol})
	}
	return out, nil
}

// longBracket returns the length of the long bracket ([[, [=[, …) that s opens, or -1.
func longBracket(s string) int {
	if len(s) == 0 || s[0] != '[' {
		return -1
	}
	n := 1
	for n < len(s) && s[n] == '=' {
		n++
	}
	if n < len(s) && s[n] == '[' {
		return n + 1
	}
	return -1
}

func isNameByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// blockDelta is how a token changes the depth of blocks: function, if, do and repeat open one
// (for and while open theirs with do), end and until close one.
func blockDelta(t token) int {
	if !t.name {
		return 0
	}
	switch t.text {
	case "function", "if", "do", "repeat":
		return 1
	case "end", "until":
		return -1
	}
	return 0
}

// topLevel splits src into its top-level statements: a statement opens with a token that
// begins its line outside every block and bracket (the scripts' layout: a top-level statement
// starts in the first column and its further lines are indented or close it), or that follows
// a semicolon there.
func topLevel(src string) ([]libraryStatement, error) {
	toks, err := tokens(src)
	if err != nil {
		return nil, err
	}
	var starts []int
	depth, brackets := 0, 0
	for i, t := range toks {
		top := depth == 0 && brackets == 0
		if i == 0 || top && (t.bol && src[t.at-1] == '\n' || toks[i-1].text == ";") {
			starts = append(starts, i)
		}
		depth += blockDelta(t)
		switch t.text {
		case "(", "{", "[":
			brackets++
		case ")", "}", "]":
			brackets--
		}
	}
	if depth != 0 || brackets != 0 {
		return nil, fmt.Errorf("lua: unbalanced blocks or brackets")
	}
	var out []libraryStatement
	for k, i := range starts {
		end := len(src)
		if k+1 < len(starts) {
			end = toks[starts[k+1]].at
		}
		s := libraryStatement{src: src[toks[i].at:end]}
		j := i
		if toks[j].text == "local" {
			j++
			if toks[j].text == "function" {
				s.def, s.names = true, []string{toks[j+1].text}
			} else {
				for ; toks[j].name; j++ {
					s.names = append(s.names, toks[j].text)
					if toks[j+1].text != "," {
						j++
						break
					}
					j++
				}
				if j < len(toks) && toks[j].text == "=" && (k+1 == len(starts) || j < starts[k+1]) {
					s.values = src[toks[j+1].at:end]
				}
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// identifiers returns the names src uses, outside field access (t.name, t:name).
func identifiers(src string) []string {
	toks, _ := tokens(src)
	var out []string
	for i, t := range toks {
		if t.name && (i == 0 || toks[i-1].text != "." && toks[i-1].text != ":") {
			out = append(out, t.text)
		}
	}
	return out
}

// markReturns rewrites the returns of src, a top-level statement, that end the call (those
// outside the functions it defines) to return true before their values.
func markReturns(src string) string {
	toks, _ := tokens(src)
	var b strings.Builder
	last, fn := 0, []int{} // fn: the block depths at which the functions src defines opened
	depth := 0
	for i, t := range toks {
		if t.name && t.text == "function" {
			fn = append(fn, depth)
		}
		depth += blockDelta(t)
		if t.name && t.text == "end" && len(fn) > 0 && fn[len(fn)-1] == depth {
			fn = fn[:len(fn)-1]
		}
		if t.name && t.text == "return" && len(fn) == 0 {
			b.WriteString(src[last : t.at+len(t.text)])
			last = t.at + len(t.text)
			next := ""
			if i+1 < len(toks) {
				next = toks[i+1].text
			}
			switch next {
			case "", "end", "else", "elseif", "until", ";":
				b.WriteString(" true")
			default:
				b.WriteString(" true,")
			}
		}
	}
	b.WriteString(src[last:])
	return b.String()
}
