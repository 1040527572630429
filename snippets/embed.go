package snippets

import (
	"embed"
	"io/fs"
)

// Snippet is the source of /snippet.js.
//
//go:embed snippet.js
var Snippet []byte

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
