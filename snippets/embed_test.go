package snippets

import (
	"bytes"
	"compress/gzip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServedSnippet: the served snippet is the source without comment
// lines and indentation, and nothing else changes: every code line is
// there, in order; stripping whole lines is safe because the source has no
// string that spans lines (no template literal, no line continuation).
func TestServedSnippet(t *testing.T) {
	require.NotContains(t, string(Source), "`", "a template literal could span lines")
	require.NotRegexp(t, `\\\n`, string(Source), "a line continuation could put a // line inside a string")

	var code [][]byte
	for line := range bytes.Lines(Source) {
		line = bytes.TrimLeft(line, " \t")
		if !bytes.HasPrefix(line, []byte("//")) {
			code = append(code, line)
		}
	}
	assert.Equal(t, string(bytes.Join(code, nil)), string(Snippet))
	assert.NotRegexp(t, `(?m)^\s*//`, string(Snippet))
	assert.Contains(t, string(Snippet), "api.ready = decide();")
	assert.Less(t, len(Snippet), len(Source)*3/4, "the comments are a good part of the source")

	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	require.NoError(t, err)
	zw.Write(Snippet)
	require.NoError(t, zw.Close())
	assert.Less(t, gz.Len(), 4096, "a few kilobytes gzipped (SPEC, Promises: Snippet)")
	t.Logf("snippet.js: source %d B, served %d B, gzipped %d B", len(Source), len(Snippet), gz.Len())
}

func TestStrip(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"comment lines go", "a();\n  // why\nb();\n", "a();\nb();\n"},
		{"indentation goes", "if (x) {\n    y();\n}\n", "if (x) {\ny();\n}\n"},
		{"a comment after code stays", "a(); // why\n", "a(); // why\n"},
		{"a URL in a string stays", "var u = 'https://x';\n", "var u = 'https://x';\n"},
		{"no final newline", "a();\n// end", "a();\n"},
	} {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, string(strip([]byte(tc.in)))) })
	}
}
