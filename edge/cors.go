package edge

import (
	"github.com/valyala/fasthttp"
)

// cors answers for the origins in --allowed-origins, with credentials so
// that the visitor cookie travels; other origins get no CORS headers, so the
// browser refuses them.
func (s *Server) cors(ctx *fasthttp.RequestCtx) {
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 || !s.originAllowed(origin) {
		return
	}
	h := &ctx.Response.Header
	setCORS(h, origin)
	if ctx.IsOptions() {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "600")
	}
}

func (s *Server) originAllowed(origin []byte) bool {
	for _, o := range s.cfg.AllowedOrigins {
		if o == string(origin) {
			return true
		}
	}
	return false
}

// setCORS sets the headers that let an allowed origin read the answer, with
// credentials.
func setCORS(h *fasthttp.ResponseHeader, origin []byte) {
	h.SetBytesV("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Vary", "Origin")
}
