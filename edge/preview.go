package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"io/fs"
	"mime"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/etalage/etalage/rules"
	"github.com/etalage/etalage/snippets"
	"github.com/valyala/fasthttp"
)

// demoProduct is one product of the demo catalogue (snippets/demo/products.json).
type demoProduct struct {
	SKU      string  `json:"sku"`
	Name     string  `json:"name"`
	Category string  `json:"category"`
	Price    float64 `json:"price"`
	Image    string  `json:"image"`
}

func demoCatalogue() map[string]demoProduct {
	out := map[string]demoProduct{}
	b, err := fs.ReadFile(snippets.Demo, "products.json")
	if err != nil {
		return out
	}
	var list []demoProduct
	if json.Unmarshal(b, &list) == nil {
		for _, p := range list {
			out[p.SKU] = p
		}
	}
	return out
}

var (
	scriptTag = regexp.MustCompile(`(?is)<script\b[^>]*>.*?</script>`)
	slotOpen  = regexp.MustCompile(`<div\b[^>]*\bdata-etalage-slot="([^"]+)"[^>]*>`)
	divTag    = regexp.MustCompile(`(?i)<div\b|</div>`)
)

// servePreview answers GET /admin/v1/preview/demo/<page>?visitor=&at=: the
// demo shop's page as that visitor sees it, rendered on the server with
// the scripts removed, so the console can show it in a sandboxed frame.
// Data-only blocks are drawn as the demo draws them (product cards).
// Other demo files (styles, images) are served as they are.
func (s *Server) servePreview(ctx *fasthttp.RequestCtx, rest string) {
	if !ctx.IsGet() && !ctx.IsHead() {
		s.methodNotAllowed(ctx, "GET")
		return
	}
	name, ok := strings.CutPrefix(path.Clean("/"+rest), "/demo")
	if !ok {
		s.writeError(ctx, errorf(ECodeNotFound, "use /admin/v1/preview/demo/<page>"))
		return
	}
	name = strings.TrimPrefix(name, "/")
	if name == "" {
		name = "index.html"
	}
	if path.Ext(name) == "" {
		name += ".html"
	}
	b, err := fs.ReadFile(snippets.Demo, name)
	if err != nil {
		s.writeError(ctx, errorf(ECodeNotFound, "no such demo page"))
		return
	}
	if path.Ext(name) != ".html" {
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		ctx.SetContentType(ct)
		ctx.SetBody(b)
		return
	}
	d := s.defs.Load()
	now := s.cfg.Now()
	if at := string(ctx.QueryArgs().Peek("at")); at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			s.writeError(ctx, errorf(ECodeInvalid, "at: an RFC 3339 time"))
			return
		}
		now = t
	}
	in := rules.Input{Profile: emptyProfile, Seasonal: d.noSeasons, Now: now, Context: rules.Context{Device: "desktop", URL: "/demo/" + strings.TrimSuffix(name, ".html")}}
	who := "a new visitor"
	if ref := string(ctx.QueryArgs().Peek("visitor")); ref != "" {
		cctx, cancel := context.WithTimeout(context.Background(), adminDeadline)
		defer cancel()
		pid, err := s.resolve(cctx, ref)
		if err != nil {
			s.writeError(ctx, err)
			return
		}
		snap, err := s.profiles.Load(cctx, pid, d.policy)
		if err != nil {
			s.writeError(ctx, err)
			return
		}
		in.Profile, in.Seasonal = snap.Primary, snap.Seasonal
		who = ref
	}
	var slots []string
	for _, m := range slotOpen.FindAllSubmatch(b, -1) {
		slots = append(slots, string(m[1]))
	}
	var dec rules.Decision
	d.set.Decide(&in, slots, &dec)
	fill := map[string][]byte{}
	cat := demoCatalogue()
	for _, c := range dec.Choices {
		if c.Block == nil {
			continue
		}
		var inner []byte
		if c.HTML != nil {
			inner = append(inner, c.HTML...)
		}
		inner = append(inner, renderData(c.Block.Data, cat)...)
		fill[c.Slot] = append([]byte(`<!-- block `+html.EscapeString(c.Block.ID)+` -->`), inner...)
	}
	page := scriptTag.ReplaceAll(b, nil)
	page = fillSlots(page, fill)
	page = bytes.ReplaceAll(page, []byte(`"/demo/`), []byte(`"/admin/v1/preview/demo/`))
	banner := `<p style="margin:0;padding:.5rem 1rem;background:#ffe9a8;font:14px system-ui">Preview as ` + html.EscapeString(who) +
		` at ` + html.EscapeString(now.Format("2006-01-02 15:04")) + `, revision ` + strconv.FormatInt(d.rev, 10) +
		`; segments: ` + html.EscapeString(strings.Join(dec.Segments, ", ")) + `</p>`
	page = bytes.Replace(page, []byte("<body>"), []byte("<body>"+banner), 1)
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'none'; frame-ancestors 'self'")
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(page)
}

// renderData draws a block's data the way the demo shop does: products
// named in skus as cards, an image as an image.
func renderData(data []byte, cat map[string]demoProduct) []byte {
	if data == nil {
		return nil
	}
	var v struct {
		SKUs  []string `json:"skus"`
		Image string   `json:"image"`
	}
	if json.Unmarshal(data, &v) != nil {
		return nil
	}
	var b strings.Builder
	if len(v.SKUs) > 0 {
		b.WriteString(`<div class="grid picks">`)
		for _, sku := range v.SKUs {
			p, ok := cat[sku]
			if !ok {
				continue
			}
			b.WriteString(`<a class="card" href="/demo/p/` + html.EscapeString(p.SKU) + `"><img src="` + html.EscapeString(p.Image) + `" alt="" width="160" height="120"><span>` +
				html.EscapeString(p.Name) + `</span><span class="price">€ ` + strconv.FormatFloat(p.Price, 'f', 2, 64) + `</span></a>`)
		}
		b.WriteString(`</div>`)
	}
	return []byte(b.String())
}

// fillSlots replaces the content of each slot's div with fill[slot].
func fillSlots(page []byte, fill map[string][]byte) []byte {
	var out []byte
	for {
		loc := slotOpen.FindSubmatchIndex(page)
		if loc == nil {
			return append(out, page...)
		}
		out = append(out, page[:loc[1]]...)
		slot := string(page[loc[2]:loc[3]])
		rest := page[loc[1]:]
		// Find the </div> that closes this div, counting nested ones.
		depth, end := 1, len(rest)
		for _, m := range divTag.FindAllIndex(rest, -1) {
			if rest[m[0]+1] == '/' {
				depth--
			} else {
				depth++
			}
			if depth == 0 {
				end = m[0]
				break
			}
		}
		if f, ok := fill[slot]; ok {
			out = append(out, f...)
		} else {
			out = append(out, rest[:end]...)
		}
		page = rest[end:]
	}
}

// serveOverview answers GET /admin/v1/overview: the running revision, what
// it holds (segments, blocks per slot with segment, priority and schedule,
// seasons with whether they collect or are active now) and each segment's
// estimated size from one sample.
func (s *Server) serveOverview(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		s.methodNotAllowed(ctx, "GET")
		return
	}
	d := s.defs.Load()
	now := s.cfg.Now()
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, smp, counts, err := s.sampleSegments(cctx, []variant{{d.set, d.policy}}, defaultSample)
	out := map[string]any{"revision": d.rev, "now": now.Format(time.RFC3339), "summary": d.set.Summarize(now)}
	if err != nil {
		out["sizes_error"] = "the profile store did not answer: sizes unknown"
	} else {
		sizes := map[string]sized{}
		for _, id := range d.set.SegmentIDs() {
			sizes[id] = size(counts[0][id], smp)
		}
		out["sizes"] = sizes
		out["sample"] = info
	}
	s.writeJSON(ctx, fasthttp.StatusOK, out)
}
