package snippets

import (
	"bytes"
	"embed"
	"io/fs"
)

// Source is snippet.js as written, with its comments.
//
//go:embed snippet.js
var Source []byte

// Snippet is what /snippet.js serves: Source without its comment lines
// and indentation, a third smaller gzipped. Only whole lines whose first
// non-blank characters are // go, so no code changes: the source has no
// multi-line strings (TestServedSnippet checks).
var Snippet = strip(Source)

func strip(src []byte) []byte {
	var out []byte
	for line := range bytes.Lines(src) {
		line = bytes.TrimLeft(line, " \t")
		if bytes.HasPrefix(line, []byte("//")) {
			continue
		}
		out = append(out, line...)
	}
	return out
}

//go:embed all:demo
var demoFiles embed.FS

// Demo holds the demo shop's pages, rooted at the demo directory:
// index.html, c/sneakers.html, p/<sku>.html, ...
var Demo fs.FS = mustSub(demoFiles, "demo")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
