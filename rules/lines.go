package rules

import (
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/etalage/etalage/profile"
	"go.yaml.in/yaml/v3"
)

// Warnings lists what is valid but probably a mistake, with paths and
// lines: a profile field that is neither standard nor declared under
// fields, so that only an event naming exactly that field could set it —
// often a typo like profile.shoe_sise.
func (s *Set) Warnings() []Problem { return s.warnings }

// noteField records a warning when f is a profile field that nothing in
// the document can set: not standard, not declared.
func (s *Set) noteField(f fieldRef, path string) {
	if f.scope != scopeProfile {
		return
	}
	if _, ok := standardFields[f.name]; ok {
		return
	}
	if _, ok := s.fields[f.name]; ok {
		return
	}
	msg := "profile." + f.name + " is not a standard field and not declared under fields, so only an event naming exactly this field sets it"
	if near := s.nearestField(f.name); near != "" {
		msg += "; did you mean " + near + "?"
	} else {
		msg += "; declare it (fields: [{name: " + f.name + ", type: …}]) if that is intended"
	}
	s.warnings = append(s.warnings, Problem{Path: path, Message: msg})
}

// nearestField returns a standard or declared field within two edits of
// name, or "".
func (s *Set) nearestField(name string) string {
	cands := make([]string, 0, len(standardFields)+len(s.fields))
	for n := range standardFields {
		cands = append(cands, n)
	}
	for n := range s.fields {
		cands = append(cands, n)
	}
	sort.Strings(cands)
	best, bestD := "", 3
	for _, c := range cands {
		if d := editDistance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return "profile." + best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkCount rejects counts that no profile can have: a count is a whole
// number from 0 up, so gte: -1 (always true) or lt: 0 (never) is a mistake.
func checkCount(c *checker, n node, ops []op) {
	for _, o := range ops {
		if o.vk != profile.KindNumber || o.isDur || o.set != nil {
			continue
		}
		switch {
		case o.num < 0:
			c.add(n.at(o.name), "a count is never negative: %s %s cannot be meant", o.name, o.text)
		case o.kind == opLt && o.num == 0:
			c.add(n.at(o.name), "a count is never below 0: lt: 0 never holds")
		case o.num != float64(int64(o.num)):
			c.add(n.at(o.name), "a count is a whole number, not %s", o.text)
		}
	}
}

var lineRe = regexp.MustCompile(`line (\d+)`)

// syntaxLine finds the line in a YAML parser message, 0 when none.
func syntaxLine(msg string) int {
	m := lineRe.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// lineOf follows a problem path (segments[3].rule.any[1].field) through the
// document and returns the line of the deepest node it reaches: the key
// itself when it exists, else the mapping or list that lacks it.
func lineOf(root *yaml.Node, path string) int {
	if root == nil || len(root.Content) == 0 {
		return 0
	}
	n := root.Content[0]
	line := n.Line
	for _, part := range splitPath(path) {
		switch {
		case strings.HasPrefix(part, "["):
			i, err := strconv.Atoi(strings.Trim(part, "[]"))
			if err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		default:
			if n.Kind != yaml.MappingNode {
				return line
			}
			found := false
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == part {
					line = n.Content[j].Line
					n = n.Content[j+1]
					found = true
					break
				}
			}
			if !found {
				return line
			}
		}
	}
	return line
}

// splitPath splits a.b[2].c into a, b, [2], c.
func splitPath(path string) []string {
	var out []string
	for _, dot := range strings.Split(path, ".") {
		for dot != "" {
			i := strings.IndexByte(dot[1:], '[')
			if i < 0 {
				out = append(out, dot)
				break
			}
			out = append(out, dot[:i+1])
			dot = dot[i+1:]
		}
	}
	return out
}
