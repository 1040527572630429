package rules

import (
	"net/url"
	"strings"
)

// Webhook is a compiled webhook definition: when a known contact enters or
// leaves one of Segments, a signed POST goes to URL (see package trigger).
type Webhook struct {
	ID       string
	URL      string
	Segments []string // in document order, no duplicates
	Consent  string   // "" when every contact counts; else only those who gave this purpose
	Fields   []string // profile field names sent in the payload
}

// Webhooks returns the compiled webhooks in document order.
func (s *Set) Webhooks() []Webhook { return s.webhooks }

// Webhook returns the webhook with the id, or false.
func (s *Set) Webhook(id string) (*Webhook, bool) {
	for i := range s.webhooks {
		if s.webhooks[i].ID == id {
			return &s.webhooks[i], true
		}
	}
	return nil, false
}

// maxWebhookFields bounds the profile fields of one payload.
const maxWebhookFields = 32

func (s *Set) compileWebhooks(c *checker, n node) {
	seen := map[string]bool{}
	ctxDep := s.contextSegments()
	for _, wn := range c.list(n) {
		m := c.fields(wn, "id", "url", "segments", "consent", "fields")
		w := Webhook{}
		id, okID := c.id(m["id"].orMissing(c, wn.at("id")))
		if okID {
			if seen[id] {
				c.add(wn.at("id"), "webhook %q defined twice", id)
			}
			seen[id] = true
			w.ID = id
		}
		if un := m["url"].orMissing(c, wn.at("url")); un.Tag != "!!missing" {
			if raw, ok := c.str(un); ok {
				if msg := checkWebhookURL(raw); msg != "" {
					c.add(un.path, "%s", msg)
				} else {
					w.URL = raw
				}
			}
		}
		if sn := m["segments"].orMissing(c, wn.at("segments")); sn.Tag != "!!missing" {
			items := c.list(sn)
			if sn.isList() && len(items) == 0 {
				c.add(sn.path, "must list at least one segment")
			}
			dup := map[string]bool{}
			for _, it := range items {
				sid, ok := c.str(it)
				if !ok {
					continue
				}
				j, known := s.segIdx[sid]
				switch {
				case !known:
					c.add(it.path, "unknown segment %q", sid)
				case dup[sid]:
					c.add(it.path, "segment %q listed twice", sid)
				case ctxDep[j] != "":
					c.add(it.path, "segment %q depends on the request (%s): it has no answer outside a request, so it cannot trigger a webhook", sid, ctxDep[j])
				default:
					dup[sid] = true
					w.Segments = append(w.Segments, sid)
				}
			}
		}
		if cn, ok := m["consent"]; ok {
			if v, ok := c.str(cn); ok {
				if !validID(v) {
					c.add(cn.path, "%q is not a consent purpose: use 1-64 characters of a-z, 0-9, - and _", v)
				}
				w.Consent = v
			}
		}
		if fn, ok := m["fields"]; ok {
			items := c.list(fn)
			if len(items) > maxWebhookFields {
				c.add(fn.path, "at most %d fields", maxWebhookFields)
			}
			dup := map[string]bool{}
			for _, it := range items {
				name, ok := c.str(it)
				if !ok {
					continue
				}
				name = strings.TrimPrefix(name, "profile.")
				switch {
				case !validID(name):
					c.add(it.path, "%q is not a profile field name", name)
				case dup[name]:
					c.add(it.path, "field %q listed twice", name)
				default:
					dup[name] = true
					w.Fields = append(w.Fields, name)
				}
			}
		}
		if okID {
			s.webhooks = append(s.webhooks, w)
		}
	}
}

// checkWebhookURL returns what is wrong with a webhook URL, or "".
func checkWebhookURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "not a URL: " + strings.TrimPrefix(err.Error(), "parse ")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "a webhook URL starts with https:// (or http://), not " + quoteScheme(u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return "a webhook URL needs a host, like https://mailer.example/hooks/etalage"
	}
	if u.Fragment != "" {
		return "a webhook URL has no #fragment"
	}
	return ""
}

func quoteScheme(s string) string {
	if s == "" {
		return "no scheme"
	}
	return s + ":"
}

// contextSegments returns, per segment, the first context field it depends
// on directly, through its parent or through segment: references ("" when
// none). Cycles were reported already; they end the walk.
func (s *Set) contextSegments() []string {
	out := make([]string, len(s.segments))
	state := make([]uint8, len(s.segments)) // 0 new, 1 visiting, 2 done
	var visit func(i int) string
	visit = func(i int) string {
		if state[i] != 0 {
			return out[i]
		}
		state[i] = 1
		seg := s.segments[i]
		dep := ""
		if seg.parent >= 0 {
			if d := visit(seg.parent); d != "" {
				dep = d + " through parent " + s.segments[seg.parent].id
			}
		}
		if dep == "" {
			dep = s.condContext(seg.rule, visit)
		}
		out[i], state[i] = dep, 2
		return dep
	}
	for i := range s.segments {
		visit(i)
	}
	return out
}

func (s *Set) condContext(c *cond, visit func(int) string) string {
	if c == nil {
		return ""
	}
	switch c.kind {
	case condField:
		if c.field.scope == scopeContext {
			return c.field.text
		}
	case condSegment:
		if c.seg >= 0 {
			if d := visit(c.seg); d != "" {
				return d + " through segment " + s.segments[c.seg].id
			}
		}
	}
	for i := range c.children {
		if d := s.condContext(&c.children[i], visit); d != "" {
			return d
		}
	}
	return ""
}
