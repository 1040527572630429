package edge

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"sync"

	"github.com/etalage/etalage/snippets"
	"github.com/valyala/fasthttp"
)

// snippetAsset is the snippet, gzipped once, with its strong ETag.
type snippetAsset struct {
	plain, gz []byte
	etag      string
}

var (
	snippetOnce sync.Once
	snippet     snippetAsset
)

func loadSnippet() *snippetAsset {
	snippetOnce.Do(func() {
		snippet.plain = snippets.Snippet
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(snippet.plain)
		zw.Close()
		snippet.gz = buf.Bytes()
		sum := sha256.Sum256(snippet.plain)
		snippet.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	})
	return &snippet
}

// serveSnippet answers GET /snippet.js: cacheable, with a strong ETag (304
// on revalidation) and gzip when the client takes it.
func (s *Server) serveSnippet(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		s.methodNotAllowed(ctx, "GET")
		return
	}
	a := loadSnippet()
	h := &ctx.Response.Header
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "public, max-age=3600, stale-while-revalidate=86400")
	h.Set("Vary", "Accept-Encoding")
	h.SetContentType("text/javascript; charset=utf-8")
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && bytes.Contains(inm, []byte(a.etag)) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	if ctx.Request.Header.HasAcceptEncoding("gzip") {
		h.Set("Content-Encoding", "gzip")
		ctx.SetBody(a.gz)
		return
	}
	ctx.SetBody(a.plain)
}
