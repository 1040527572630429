package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// checker collects every problem of a document with its path.
type checker struct {
	problems []Problem
}

func (c *checker) add(path, format string, args ...any) {
	c.problems = append(c.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// node is a YAML node with the path that leads to it.
type node struct {
	*yaml.Node
	path string
}

func (n node) at(key string) string {
	if n.path == "" {
		return key
	}
	return n.path + "." + key
}

func (n node) isMap() bool  { return n.Node != nil && n.Kind == yaml.MappingNode }
func (n node) isList() bool { return n.Node != nil && n.Kind == yaml.SequenceNode }
func (n node) isScalar() bool {
	return n.Node != nil && n.Kind == yaml.ScalarNode
}

// fields returns the entries of a mapping in document order, reporting keys
// that are not allowed.
func (c *checker) fields(n node, allowed ...string) map[string]node {
	out := map[string]node{}
	if !n.isMap() {
		c.add(n.path, "must be a mapping of keys and values")
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		ok := false
		for _, a := range allowed {
			if a == k {
				ok = true
				break
			}
		}
		if !ok {
			c.add(n.at(k), "unknown key %q; expected one of %s", k, strings.Join(allowed, ", "))
			continue
		}
		if _, dup := out[k]; dup {
			c.add(n.at(k), "given twice")
		}
		out[k] = node{n.Content[i+1], n.at(k)}
	}
	return out
}

func (c *checker) list(n node) []node {
	if !n.isList() {
		c.add(n.path, "must be a list")
		return nil
	}
	out := make([]node, len(n.Content))
	for i, e := range n.Content {
		out[i] = node{e, n.path + "[" + strconv.Itoa(i) + "]"}
	}
	return out
}

func (c *checker) str(n node) (string, bool) {
	if !n.isScalar() || n.Tag == "!!null" {
		c.add(n.path, "must be a text value")
		return "", false
	}
	return n.Value, true
}

func (c *checker) id(n node) (string, bool) {
	s, ok := c.str(n)
	if !ok {
		return "", false
	}
	if !validID(s) {
		c.add(n.path, "%q is not a valid id: use 1-64 characters of a-z, 0-9, - and _", s)
		return "", false
	}
	return s, true
}

func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			return false
		}
	}
	return true
}

func (c *checker) number(n node) (float64, bool) {
	if n.isScalar() && (n.Tag == "!!int" || n.Tag == "!!float") {
		f, err := strconv.ParseFloat(n.Value, 64)
		if err == nil {
			return f, true
		}
	}
	c.add(n.path, "must be a number")
	return 0, false
}

func (c *checker) boolean(n node) (bool, bool) {
	if n.isScalar() && n.Tag == "!!bool" {
		b, err := strconv.ParseBool(n.Value)
		if err == nil {
			return b, true
		}
		switch strings.ToLower(n.Value) {
		case "yes", "on":
			return true, true
		case "no", "off":
			return false, true
		}
	}
	c.add(n.path, "must be true or false")
	return false, false
}

// ParseDuration parses durations like 30m, 14d, 2w: a whole number and one
// of the units s, m, h, d, w.
func ParseDuration(s string) (time.Duration, bool) {
	if len(s) < 2 {
		return 0, false
	}
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
	if err != nil {
		return 0, false
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 's':
		unit = time.Second
	case 'm':
		unit = time.Minute
	case 'h':
		unit = time.Hour
	case 'd':
		unit = 24 * time.Hour
	case 'w':
		unit = 7 * 24 * time.Hour
	default:
		return 0, false
	}
	return time.Duration(n) * unit, true
}

func (c *checker) duration(n node) (time.Duration, bool) {
	s, ok := c.str(n)
	if !ok {
		return 0, false
	}
	d, ok := ParseDuration(s)
	if !ok || d <= 0 {
		c.add(n.path, "%q is not a duration: use a number and s, m, h, d or w, like 30m or 14d", s)
		return 0, false
	}
	return d, true
}

// date parses 2026-11-10 (a day in loc) or an RFC 3339 time.
func parseDate(s string, loc *time.Location) (time.Time, bool) {
	if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return t, true
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	return time.Time{}, false
}
