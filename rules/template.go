package rules

import (
	"strconv"
	"strings"
)

// part is a piece of a compiled template: literal text, or a field whose
// value is rendered escaped for where it stands (or def when it is missing).
type part struct {
	lit   string
	field *fieldRef
	def   string
	esc   escaper
}

// escaper says how a value is escaped: decided once, at compile time, from
// the markup around the action (html/template's contextual escaping is the
// reference, and a differential test holds etalage to it).
type escaper uint8

const (
	escHTML     escaper = iota // text, RCDATA or a quoted attribute value
	escURLStart                // a URL attribute, at its start: active schemes refused
	escURLPath                 // a URL attribute, after its start, before ? or #
	escURLQuery                // a URL attribute, in its query or fragment
)

// parseTemplate compiles html with {{ .profile.first_name }} actions,
// optionally {{ .profile.first_name | default "daar" }}. Only field paths are
// allowed: templates are filled at request time without parsing anything.
// Each action is escaped for its place (text, quoted attribute, URL); an
// action where no escaping is safe (script, style, event handlers, unquoted
// attribute values, tag and attribute names, comments) is an error at path.
func (s *Set) parseTemplate(c *checker, path, html string) []part {
	var parts []part
	var ctx htmlContext
	actions := false
	rest := html
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				parts = append(parts, part{lit: rest})
				ctx.scan(rest)
			}
			if actions {
				if msg := ctx.unfinished(); msg != "" {
					c.add(path, "the html ends %s, so the values in it would run into the page", msg)
				}
			}
			return parts
		}
		if i > 0 {
			parts = append(parts, part{lit: rest[:i]})
			ctx.scan(rest[:i])
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			c.add(path, "a {{ is not closed with }}")
			return nil
		}
		action := strings.TrimSpace(rest[i+2 : i+j])
		rest = rest[i+j+2:]
		actions = true
		esc, msg := ctx.escaper()
		if msg != "" {
			c.add(path, "{{ %s }} stands %s, where no value can be escaped safely; move it into text or a quoted attribute", action, msg)
			continue
		}
		expr, def, hasDef := strings.Cut(action, "|")
		expr = strings.TrimSpace(expr)
		p := part{esc: esc}
		if hasDef {
			d := strings.TrimSpace(def)
			arg, ok := strings.CutPrefix(d, "default ")
			uq, err := strconv.Unquote(strings.TrimSpace(arg))
			if !ok || err != nil {
				c.add(path, "in {{ %s }}: after | only default \"text\" is allowed", action)
				continue
			}
			p.def = uq
		}
		if !strings.HasPrefix(expr, ".") {
			c.add(path, "in {{ %s }}: name a field like .profile.first_name", action)
			continue
		}
		f, msg := s.parseField(expr[1:])
		if msg != "" {
			c.add(path, "in {{ %s }}: %s", action, msg)
			continue
		}
		s.noteField(f, path)
		p.field = &f
		parts = append(parts, p)
	}
}

// HTML contexts of a template's literal markup, a subset of html/template's.
const (
	ctxText      = iota
	ctxRCDATA    // <textarea>, <title>: text up to the end tag
	ctxRaw       // <script>, <style>: no value is safe in there
	ctxComment   // <!-- ... -->
	ctxTagName   // <name or </name
	ctxTag       // inside a tag, between attributes
	ctxAttrName  // an attribute's name
	ctxAfterName // after a name: = or the next attribute
	ctxBeforeVal // after =
	ctxQuoted    // inside a quoted attribute value
	ctxUnquoted  // inside an unquoted attribute value
)

// htmlContext follows the markup of a template's literal text, so that each
// action can be escaped for the place it stands in.
type htmlContext struct {
	state int
	elem  string // the current (or raw/RCDATA) element's name, lower-case
	end   bool   // the tag is an end tag
	name  []byte // the tag or attribute name being read
	attr  string // the current attribute's name, lower-case
	quote byte
	url   int  // in a URL value: 0 nothing yet, 1 something, 2 past ? or #
	lt    bool // the text so far ends with < or </: a value would name a tag
}

// scan advances the context over literal markup.
func (h *htmlContext) scan(s string) {
	defer func() {
		h.lt = h.state == ctxText && (strings.HasSuffix(s, "<") || strings.HasSuffix(s, "</"))
	}()
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch h.state {
		case ctxText:
			if ch != '<' {
				continue
			}
			switch rest := s[i+1:]; {
			case strings.HasPrefix(rest, "!--"):
				h.state, h.name = ctxComment, h.name[:0]
				i += 3
			case len(rest) > 1 && rest[0] == '/' && isLetter(rest[1]):
				h.state, h.end, h.name = ctxTagName, true, h.name[:0]
				i++
			case len(rest) > 0 && isLetter(rest[0]):
				h.state, h.end, h.name = ctxTagName, false, h.name[:0]
			}
		case ctxComment:
			// h.name keeps the last two bytes, for a --> split by an action.
			if ch == '>' && string(h.name) == "--" {
				h.state = ctxText
			}
			h.name = append(h.name, ch)
			if len(h.name) > 2 {
				h.name = append(h.name[:0], h.name[len(h.name)-2:]...)
			}
		case ctxRaw, ctxRCDATA:
			if ch == '<' && i+1 < len(s) && s[i+1] == '/' && hasPrefixFold(s[i+2:], h.elem) {
				h.state, h.end, h.name = ctxTagName, true, h.name[:0]
				i++
			}
		case ctxTagName:
			if isSpace(ch) || ch == '/' || ch == '>' {
				h.elem = strings.ToLower(string(h.name))
				h.state = ctxTag
				i--
				continue
			}
			h.name = append(h.name, ch)
		case ctxTag:
			switch {
			case isSpace(ch) || ch == '/':
			case ch == '>':
				h.endTag()
			default:
				h.state, h.name = ctxAttrName, append(h.name[:0], ch)
			}
		case ctxAttrName:
			if isSpace(ch) || ch == '=' || ch == '>' || ch == '/' {
				h.attr = strings.ToLower(string(h.name))
				h.state = ctxAfterName
				i--
				continue
			}
			h.name = append(h.name, ch)
		case ctxAfterName:
			switch {
			case isSpace(ch):
			case ch == '=':
				h.state = ctxBeforeVal
			default:
				h.state = ctxTag
				i--
			}
		case ctxBeforeVal:
			switch {
			case isSpace(ch):
			case ch == '"' || ch == '\'':
				h.state, h.quote, h.url = ctxQuoted, ch, 0
			case ch == '>':
				h.endTag()
			default:
				h.state = ctxUnquoted
			}
		case ctxQuoted:
			switch {
			case ch == h.quote:
				h.state = ctxTag
			case ch == '?' || ch == '#':
				h.url = 2
			case !isSpace(ch) && h.url == 0:
				h.url = 1
			}
		case ctxUnquoted:
			switch {
			case isSpace(ch):
				h.state = ctxTag
			case ch == '>':
				h.endTag()
			}
		}
	}
}

// endTag leaves a tag at its >.
func (h *htmlContext) endTag() {
	h.state = ctxText
	if h.end {
		return
	}
	switch h.elem {
	case "script", "style":
		h.state = ctxRaw
	case "textarea", "title":
		h.state = ctxRCDATA
	}
}

// escaper returns how a value is escaped where the context stands, or why
// no escaping is safe there.
func (h *htmlContext) escaper() (escaper, string) {
	switch h.state {
	case ctxText:
		if h.lt {
			return 0, "in a tag name"
		}
		return escHTML, ""
	case ctxRCDATA:
		return escHTML, ""
	case ctxRaw:
		return 0, "inside <" + h.elem + ">"
	case ctxComment:
		return 0, "inside an HTML comment"
	case ctxTagName:
		return 0, "in a tag name"
	case ctxTag, ctxAttrName, ctxAfterName:
		return 0, "in an attribute name"
	case ctxBeforeVal, ctxUnquoted:
		return 0, "in an unquoted attribute value"
	}
	switch attrKind(h.attr) {
	case attrJS:
		return 0, "in the event-handler attribute " + h.attr
	case attrCSS:
		return 0, "in the style attribute"
	case attrSrcset:
		return 0, "in the srcset attribute"
	case attrURL:
		switch h.url {
		case 0:
			return escURLStart, ""
		case 1:
			return escURLPath, ""
		}
		return escURLQuery, ""
	}
	return escHTML, ""
}

// unfinished says where the markup ends when that is not text.
func (h *htmlContext) unfinished() string {
	switch h.state {
	case ctxText, ctxRCDATA, ctxRaw:
		return ""
	case ctxComment:
		return "inside an HTML comment"
	case ctxQuoted, ctxUnquoted, ctxBeforeVal:
		return "inside an attribute value"
	}
	return "inside a tag"
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// Attribute kinds, as html/template's attrType classifies them.
const (
	attrPlain = iota
	attrURL
	attrJS
	attrCSS
	attrSrcset
)

// attrKinds lists the attributes html/template does not classify as plain
// or by the heuristics in attrKind.
var attrKinds = map[string]int{
	"action": attrURL, "archive": attrURL, "background": attrURL, "cite": attrURL,
	"classid": attrURL, "codebase": attrURL, "data": attrURL, "formaction": attrURL,
	"href": attrURL, "icon": attrURL, "longdesc": attrURL, "manifest": attrURL,
	"poster": attrURL, "profile": attrURL, "src": attrURL, "usemap": attrURL, "xmlns": attrURL,
	"style": attrCSS, "srcset": attrSrcset,
	// Plain although the heuristics below would say otherwise.
	"srclang": attrPlain, "srcdoc": attrPlain, "open": attrPlain,
}

// attrKind classifies an attribute by its (lower-case) name.
func attrKind(name string) int {
	if rest, ok := strings.CutPrefix(name, "data-"); ok {
		name = rest
	} else if prefix, short, ok := strings.Cut(name, ":"); ok {
		if prefix == "xmlns" {
			return attrURL
		}
		name = short
	}
	if k, ok := attrKinds[name]; ok {
		return k
	}
	if strings.HasPrefix(name, "on") {
		return attrJS
	}
	if strings.Contains(name, "src") || strings.Contains(name, "uri") || strings.Contains(name, "url") {
		return attrURL
	}
	return attrPlain
}

// appendContextual appends s escaped by e.
func appendContextual(b []byte, s string, e escaper) []byte {
	switch e {
	case escURLStart:
		if !safeURL(s) {
			// What html/template writes for a refused URL.
			return append(b, "#ZgotmplZ"...)
		}
		return appendEscaped(b, string(appendURL(nil, s, true)))
	case escURLPath:
		return appendEscaped(b, string(appendURL(nil, s, true)))
	case escURLQuery:
		return appendEscaped(b, string(appendURL(nil, s, false)))
	}
	return appendEscaped(b, s)
}

// safeURL reports whether a URL at the start of an attribute is harmless:
// relative, or with the scheme http, https or mailto. javascript:, data:,
// vbscript: and every other scheme are refused.
func safeURL(s string) bool {
	scheme, _, ok := strings.Cut(s, ":")
	if !ok || strings.Contains(scheme, "/") {
		return true
	}
	return strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https") || strings.EqualFold(scheme, "mailto")
}

// appendURL percent-encodes s for a URL: keeping unreserved characters,
// and with normalize also the reserved ones and valid %xx escapes (a value
// that is a URL or a path); without it, everything else is encoded (a
// value inside a query or fragment).
func appendURL(b []byte, s string, normalize bool) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
			b = append(b, c)
			continue
		case normalize && strings.IndexByte("!#$&*+,/:;=?@[]", c) >= 0:
			b = append(b, c)
			continue
		case normalize && c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return b
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// appendEscaped appends s to b with HTML's special characters escaped, as
// html/template's HTML escaper does (+ too, for UTF-7 sniffing; NUL becomes
// U+FFFD), for text and quoted attribute values alike.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; ch {
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '&':
			b = append(b, "&amp;"...)
		case '"':
			b = append(b, "&#34;"...)
		case '\'':
			b = append(b, "&#39;"...)
		case '+':
			b = append(b, "&#43;"...)
		case 0:
			b = append(b, "\uFFFD"...)
		default:
			b = append(b, ch)
		}
	}
	return b
}
