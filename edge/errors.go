package edge

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
	"github.com/valyala/fasthttp"
)

// Error codes of the JSON error shape {"error": {"code", "message"}}.
const (
	ECodeInvalid      = "invalid"
	ECodeUnauthorized = "unauthorized"
	ECodeForbidden    = "forbidden"
	ECodeNotFound     = "not_found"
	ECodeMethod       = "method_not_allowed"
	ECodeConflict     = "conflict"
	ECodeTooLarge     = "too_large"
	ECodeHeaders      = "headers_too_large"
	ECodeDefinitions  = "invalid_definitions"
	ECodeRateLimited  = "rate_limited"
	ECodeUnavailable  = "unavailable"
	ECodeInternal     = "internal"
)

// statusOf is the one table that turns error codes into HTTP statuses.
var statusOf = map[string]int{
	ECodeInvalid:      fasthttp.StatusBadRequest,
	ECodeUnauthorized: fasthttp.StatusUnauthorized,
	ECodeForbidden:    fasthttp.StatusForbidden,
	ECodeNotFound:     fasthttp.StatusNotFound,
	ECodeMethod:       fasthttp.StatusMethodNotAllowed,
	ECodeConflict:     fasthttp.StatusConflict,
	ECodeTooLarge:     fasthttp.StatusRequestEntityTooLarge,
	ECodeHeaders:      fasthttp.StatusRequestHeaderFieldsTooLarge,
	ECodeDefinitions:  fasthttp.StatusUnprocessableEntity,
	ECodeRateLimited:  fasthttp.StatusTooManyRequests,
	ECodeUnavailable:  fasthttp.StatusServiceUnavailable,
	ECodeInternal:     fasthttp.StatusInternalServerError,
}

// Error is an error with a code and a message that is safe to show callers.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// errorf returns an *Error with the code and message.
func errorf(code, msg string) *Error { return &Error{Code: code, Message: msg} }

// classify turns any error into a code and a message safe for callers.
// Internal errors are not described to callers; they are logged.
func classify(err error) (code, msg string) {
	var e *Error
	var ve *rules.ValidationError
	switch {
	case errors.As(err, &e):
		return e.Code, e.Message
	case errors.As(err, &ve):
		return ECodeDefinitions, ve.Error()
	case errors.Is(err, profile.ErrInvalid):
		return ECodeInvalid, err.Error()
	case errors.Is(err, profile.ErrNotFound):
		return ECodeNotFound, "not found"
	case errors.Is(err, profile.ErrConflict):
		// Writers on other nodes kept changing the profile: retryable.
		return ECodeUnavailable, "the profile is busy; retry later"
	case errors.Is(err, profile.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, errBreakerOpen):
		return ECodeUnavailable, "the profile store is unavailable; retry later"
	}
	return ECodeInternal, "internal error"
}

// writeError writes err as the JSON error shape with its status. A 503
// carries Retry-After, and a 422 lists every problem of the definitions.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error) {
	code, msg := classify(err)
	status := statusOf[code]
	if code == ECodeInternal {
		s.log.Error("request failed", "route", routeName(ctx), "err", err)
	}
	// The CORS headers already set for an allowed origin survive the
	// reset: without them a cross-origin snippet sees a network error
	// instead of the status, and retries a rejected event forever.
	var acao []byte
	if v := ctx.Response.Header.Peek("Access-Control-Allow-Origin"); len(v) > 0 {
		acao = append(acao, v...)
	}
	ctx.Response.Reset()
	if acao != nil {
		setCORS(&ctx.Response.Header, acao)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	if status == fasthttp.StatusTooManyRequests {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	if status == fasthttp.StatusUnauthorized {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="etalage"`)
	}
	b := make([]byte, 0, 128)
	var ve *rules.ValidationError
	if errors.As(err, &ve) {
		b = append(b, `{"error":{"code":"invalid_definitions","message":`...)
		b = appendJSONString(b, msg)
		b = append(b, `},"errors":[`...)
		for i, p := range ve.Problems {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"path":`...)
			b = appendJSONString(b, p.Path)
			b = append(b, `,"message":`...)
			b = appendJSONString(b, p.Message)
			if p.Line > 0 {
				b = append(b, `,"line":`...)
				b = strconv.AppendInt(b, int64(p.Line), 10)
			}
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	} else {
		b = append(b, `{"error":{"code":`...)
		b = appendJSONString(b, code)
		b = append(b, `,"message":`...)
		b = appendJSONString(b, msg)
		var ie *profile.InputError
		if errors.As(err, &ie) {
			// Machine-readable: where the problem is, and which event of
			// the batch, so that a client drops that event alone and
			// sends the rest again (the snippet does).
			b = append(b, `,"path":`...)
			b = appendJSONString(b, ie.Path)
			if i, ok := eventIndex(ie.Path); ok {
				b = append(b, `,"event":`...)
				b = strconv.AppendInt(b, int64(i), 10)
			}
		}
		b = append(b, "}}"...)
	}
	ctx.SetBody(b)
}

// eventIndex returns i of a path that starts with events[i].
func eventIndex(path string) (int, bool) {
	rest, ok := strings.CutPrefix(path, "events[")
	if !ok {
		return 0, false
	}
	end := strings.IndexByte(rest, ']')
	if end <= 0 {
		return 0, false
	}
	i, err := strconv.Atoi(rest[:end])
	return i, err == nil && i >= 0
}
