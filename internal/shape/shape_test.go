package shape

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const (
	maxFileLines = 500
	maxFuncLines = 80
)

// TestUnitsStaySmall: every non-test Go file of the repository (the nested modules included)
// has at most maxFileLines lines and every function in it at most maxFuncLines; every function
// of a Lua script, at most maxFuncLines.
func TestUnitsStaySmall(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(path, "_test.go"):
		case strings.HasSuffix(path, ".go"):
			checkGo(t, fset, path, rel)
		case strings.HasSuffix(path, ".lua"):
			checkLua(t, path, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkGo(t *testing.T, fset *token.FileSet, path, rel string) {
	t.Helper()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		t.Errorf("%s: %v", rel, err)
		return
	}
	if n := fset.File(f.Pos()).LineCount(); n > maxFileLines {
		t.Errorf("%s: %d lines, at most %d outside tests: split it by what its parts do", rel, n, maxFileLines)
	}
	for _, decl := range f.Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		if n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1; n > maxFuncLines {
			t.Errorf("%s: func %s: %d lines, at most %d: cut it into named steps", rel, fd.Name.Name, n, maxFuncLines)
		}
	}
}

// luaFunc starts a function definition in a script; a function ends at the first line that
// closes it at its own indentation ("end" at the start of the line for a top-level one).
var luaFunc = regexp.MustCompile(`^(\s*)(local\s+)?function\b`)

func checkLua(t *testing.T, path, rel string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		m := luaFunc.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		end := m[1] + "end"
		for j := i + 1; j < len(lines); j++ {
			if strings.TrimRight(lines[j], " \t") == end || strings.HasPrefix(lines[j], end+" ") {
				if n := j - i + 1; n > maxFuncLines {
					t.Errorf("%s:%d: %s: %d lines, at most %d", rel, i+1, strings.TrimSpace(line), n, maxFuncLines)
				}
				break
			}
		}
	}
}
