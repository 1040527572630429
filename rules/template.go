package rules

import (
	"strconv"
	"strings"
)

// part is a piece of a compiled template: literal text, or a field whose
// value is rendered HTML-escaped (or def when it is missing).
type part struct {
	lit   string
	field *fieldRef
	def   string
}

// parseTemplate compiles html with {{ .profile.first_name }} actions,
// optionally {{ .profile.first_name | default "daar" }}. Only field paths are
// allowed: templates are filled at request time without parsing anything.
func (s *Set) parseTemplate(c *checker, path, html string) []part {
	var parts []part
	rest := html
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				parts = append(parts, part{lit: rest})
			}
			return parts
		}
		if i > 0 {
			parts = append(parts, part{lit: rest[:i]})
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			c.add(path, "a {{ is not closed with }}")
			return nil
		}
		action := strings.TrimSpace(rest[i+2 : i+j])
		rest = rest[i+j+2:]
		expr, def, hasDef := strings.Cut(action, "|")
		expr = strings.TrimSpace(expr)
		p := part{}
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

// appendEscaped appends s to b with HTML's special characters escaped.
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
		default:
			b = append(b, ch)
		}
	}
	return b
}
