package importgraph

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	module = "github.com/rateltd/rateltd"
	marker = "<!-- import graph: read by internal/importgraph -->"
	doc    = "docs/architecture.md"
)

// TestImportGraphAsDocumented: every package of the module imports (tests aside) exactly the
// packages of the module that docs/architecture.md names for it, and every package is listed
// there: an import against the documented graph (queue importing processor, ratelimit importing
// queue, config importing anything of the module, the library importing httpapi or cmd/) fails.
func TestImportGraphAsDocumented(t *testing.T) {
	root := moduleRoot(t)
	want, err := documented(filepath.Join(root, doc))
	if err != nil {
		t.Fatal(err)
	}
	got := actual(t, root)
	for pkg, imps := range got {
		allowed, ok := want[pkg]
		if !ok {
			t.Errorf("package %s is not in the import graph of %s; add it there", pkg, doc)
			continue
		}
		for _, imp := range imps {
			if !slices.Contains(allowed, imp) {
				t.Errorf("%s imports %s, which the graph in %s does not allow", pkg, imp, doc)
			}
		}
		for _, a := range allowed {
			if !slices.Contains(imps, a) {
				t.Errorf("the graph in %s says %s imports %s; it does not (update the graph)", doc, pkg, a)
			}
		}
	}
	for pkg := range want {
		if _, ok := got[pkg]; !ok {
			t.Errorf("the graph in %s lists %s, which go list does not find", doc, pkg)
		}
	}
}

// TestLibraryStaysOutOfTheEdges: the library (the root package and everything it builds on)
// depends, directly or not, on no package of the command, the HTTP layer or the metrics
// adapter, and not on Prometheus (DESIGN.md §5, CONVENTIONS.md).
func TestLibraryStaysOutOfTheEdges(t *testing.T) {
	out := goList(t, moduleRoot(t), "-deps", "-f", "{{.ImportPath}}", module)
	for _, dep := range strings.Fields(out) {
		short := shortName(dep)
		switch {
		case short == "httpapi", short == "middleware", short == "metrics", strings.HasPrefix(short, "cmd/"),
			strings.HasPrefix(dep, "github.com/prometheus/"):
			t.Errorf("the library depends on %s", dep)
		}
	}
}

// actual maps each package of the module (short name) to the packages of the module it
// imports, from go list.
func actual(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := goList(t, root, "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	got := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var imps []string
		for _, imp := range f[1:] {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				imps = append(imps, shortName(imp))
			}
		}
		got[shortName(f[0])] = imps
	}
	if len(got) == 0 {
		t.Fatal("go list found no package")
	}
	return got
}

// documented reads the import graph written in the block after marker in the file at path:
// one line per package, "pkg → imp, imp, ...", the root package named "rateltd (root)" or
// "rateltd".
func documented(path string) (map[string][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	_, rest, ok := bytes.Cut(b, []byte(marker))
	if !ok {
		return nil, fmt.Errorf("%s: no line %q", path, marker)
	}
	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(rest))
	fences := 0
	for sc.Scan() && fences < 2 {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "```") {
			fences++
			continue
		}
		if fences != 1 || line == "" {
			continue
		}
		pkg, imps, ok := strings.Cut(line, "→")
		if !ok {
			return nil, fmt.Errorf("%s: graph line %q has no →", path, line)
		}
		name := docName(pkg)
		if _, dup := graph[name]; dup {
			return nil, fmt.Errorf("%s: %s is listed twice", path, name)
		}
		graph[name] = []string{}
		for _, imp := range strings.Split(imps, ",") {
			if imp = strings.TrimSpace(imp); imp != "" {
				graph[name] = append(graph[name], docName(imp))
			}
		}
	}
	if len(graph) == 0 {
		return nil, errors.New(path + ": the import graph block is empty")
	}
	return graph, nil
}

// docName turns a package as the graph writes it into its short name: "" for the root.
func docName(s string) string {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "(root)"))
	if s == "rateltd" {
		return ""
	}
	return s
}

// shortName is an import path of the module without the module's path: "" for the root.
func shortName(path string) string {
	return strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
}

// goList runs the go command's list with args in dir and returns its output.
func goList(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(goBinary(t), append([]string{"list"}, args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// goBinary is the go command on PATH: go test puts the GOROOT/bin of the toolchain running the
// test first on it, so this is the go command that built the test.
func goBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to list packages with: %v", err)
	}
	return p
}

// moduleRoot is the directory of the module's go.mod, two levels above this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return root
}
