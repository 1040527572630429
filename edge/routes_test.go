package edge

import (
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryRouteIsBoxed: each route name declared in routes.go has its
// boxed value, or a request on that route is logged and counted as
// not_found.
func TestEveryRouteIsBoxed(t *testing.T) {
	f, err := parser.ParseFile(gotoken.NewFileSet(), "routes.go", nil, 0)
	require.NoError(t, err)
	var names []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != gotoken.CONST {
			continue
		}
		for _, sp := range g.Specs {
			for _, v := range sp.(*ast.ValueSpec).Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == gotoken.STRING {
					s, err := strconv.Unquote(lit.Value)
					require.NoError(t, err)
					names = append(names, s)
				}
			}
		}
	}
	require.Greater(t, len(names), 20, "the route constants were not found")
	for _, n := range names {
		assert.Equal(t, n, routeValues[n], "route %q has no boxed value", n)
	}
}
