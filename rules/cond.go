package rules

import (
	"strconv"
	"strings"
	"time"

	"github.com/etalage/etalage/profile"
)

type condKind uint8

const (
	condAll condKind = iota + 1
	condAny
	condNot
	condSegment
	condInterest
	condConsent
	condScore
	condField
	condEvent
	condFalse // a condition that failed validation; never evaluated
)

// cond is a compiled condition. Everything a request needs is parsed here.
type cond struct {
	kind     condKind
	path     string // where it is in the document, for explain
	children []cond
	seg      int
	name     string
	field    fieldRef
	ops      []op
	ev       profile.EventType
	filter   filter
	count    []op
	within   time.Duration
	season   int // -1: the primary profile
}

type scope uint8

const (
	scopeProfile scope = iota + 1
	scopeVisitor
	scopeCart
	scopeContext
)

// fieldRef is a compiled field path.
type fieldRef struct {
	text   string
	scope  scope
	name   string
	season int          // -1: primary
	kind   profile.Kind // known kind, or KindNone for an undeclared profile field
	dur    bool         // the value is a duration (cart.abandoned_for)
}

var standardFields = map[string]profile.Kind{
	"email": profile.KindString, "customer_id": profile.KindString,
	"first_name": profile.KindString, "last_name": profile.KindString, "language": profile.KindString,
	"country": profile.KindString, "city": profile.KindString, "gender": profile.KindString,
	"phone": profile.KindString, "birthday": profile.KindDate,
}

var visitorFields = map[string]profile.Kind{"first_seen": profile.KindDate, "last_seen": profile.KindDate, "visits": profile.KindNumber, "known": profile.KindBool}
var cartFields = map[string]profile.Kind{"items": profile.KindNumber, "value": profile.KindNumber, "abandoned_for": profile.KindNumber}
var contextFields = map[string]profile.Kind{
	"device": profile.KindString, "browser": profile.KindString, "os": profile.KindString, "bot": profile.KindBool,
	"url": profile.KindString, "referrer": profile.KindString, "language": profile.KindString,
	"weekday": profile.KindString, "hour": profile.KindNumber,
}

// parseField compiles a field path, or returns a message saying what is wrong.
func (s *Set) parseField(text string) (fieldRef, string) {
	f := fieldRef{text: text, season: -1}
	rest := text
	if strings.HasPrefix(rest, "season.") {
		id, tail, ok := strings.Cut(rest[len("season."):], ".")
		if !ok {
			return f, "use season.<id>.<field>, like season.sinterklaas.cart.value"
		}
		i, known := s.seasonIdx[id]
		if !known {
			return f, "unknown season " + strconv.Quote(id)
		}
		f.season = i
		rest = tail
		if strings.HasPrefix(rest, "context.") {
			return f, "context fields belong to the request, not to a season"
		}
	}
	root, name, ok := strings.Cut(rest, ".")
	if !ok || name == "" {
		return f, "unknown field " + strconv.Quote(text) + "; use profile.<name>, visitor.*, cart.*, context.* or season.<id>.*"
	}
	f.name = name
	var known map[string]profile.Kind
	switch root {
	case "profile":
		f.scope = scopeProfile
		if !validID(name) {
			return f, "unknown field " + strconv.Quote(text)
		}
		if k, ok := standardFields[name]; ok {
			f.kind = k
		} else {
			f.kind = s.fields[name]
		}
		return f, ""
	case "visitor":
		f.scope, known = scopeVisitor, visitorFields
	case "cart":
		f.scope, known = scopeCart, cartFields
	case "context":
		f.scope, known = scopeContext, contextFields
	default:
		return f, "unknown field " + strconv.Quote(text) + "; use profile.<name>, visitor.*, cart.*, context.* or season.<id>.*"
	}
	k, ok := known[name]
	if !ok {
		names := make([]string, 0, len(known))
		for n := range known {
			names = append(names, root+"."+n)
		}
		sortStrings(names)
		return f, "unknown field " + strconv.Quote(text) + "; " + root + " has " + strings.Join(names, ", ")
	}
	f.kind = k
	f.dur = f.scope == scopeCart && name == "abandoned_for"
	return f, ""
}

func sortStrings(a []string) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

var condKeys = []string{"all", "any", "not", "segment", "interest", "consent", "score", "field", "event", "season", "count", "within",
	"eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "contains", "prefix", "suffix", "exists",
	"url_contains", "url_prefix", "category", "sku", "campaign", "form", "target"}

func (s *Set) compileCond(c *checker, n node) *cond {
	cd := &cond{path: n.path, kind: condFalse, season: -1, seg: -1}
	if n.Tag == "!!missing" {
		return cd
	}
	m := c.fields(n, condKeys...)
	if !n.isMap() {
		return cd
	}
	var kinds []string
	for _, k := range []string{"all", "any", "not", "segment", "interest", "consent", "score", "field", "event"} {
		if _, ok := m[k]; ok {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		if len(kinds) == 0 {
			c.add(n.path, "a condition needs one of all, any, not, segment, interest, consent, score, field or event")
		} else {
			c.add(n.path, "a condition has exactly one of all, any, not, segment, interest, consent, score, field or event; found %s", strings.Join(kinds, " and "))
		}
		return cd
	}
	kind := kinds[0]
	allowed := map[string]bool{kind: true}
	switch kind {
	case "all", "any":
		cd.kind = condAll
		if kind == "any" {
			cd.kind = condAny
		}
		items := c.list(m[kind])
		if m[kind].isList() && len(items) == 0 {
			c.add(m[kind].path, "must hold at least one condition")
		}
		for _, it := range items {
			cd.children = append(cd.children, *s.compileCond(c, it))
		}
	case "not":
		cd.kind = condNot
		cd.children = []cond{*s.compileCond(c, m["not"])}
	case "segment":
		cd.kind = condSegment
		if id, ok := c.str(m["segment"]); ok {
			if j, ok := s.segIdx[id]; ok {
				cd.seg = j
				cd.name = id
			} else {
				c.add(m["segment"].path, "unknown segment %q", id)
			}
		}
	case "interest", "consent":
		cd.kind = condInterest
		if kind == "consent" {
			cd.kind = condConsent
		}
		cd.name, _ = c.str(m[kind])
	case "score":
		cd.kind = condScore
		cd.field = fieldRef{text: "score", kind: profile.KindNumber, season: -1}
		cd.ops = s.compileOps(c, m["score"], cd.field, nil)
		if m["score"].isMap() && len(cd.ops) == 0 {
			c.add(m["score"].path, "needs a comparison like {gte: 10}")
		}
	case "field":
		cd.kind = condField
		text, ok := c.str(m["field"])
		if !ok {
			break
		}
		f, msg := s.parseField(text)
		if msg != "" {
			c.add(m["field"].path, "%s", msg)
			break
		}
		s.noteField(f, m["field"].path)
		cd.field = f
		cd.ops = s.compileOps(c, n, f, allowed)
		hasOp := false
		for k := range m {
			hasOp = hasOp || isOperator(k)
		}
		if !hasOp {
			c.add(n.path, "a field condition needs an operator: eq, ne, lt, lte, gt, gte, in, nin, contains, prefix, suffix or exists")
		}
	case "event":
		cd.kind = condEvent
		cd.ev = c.eventType(m["event"])
		cd.filter = c.filter(m)
		for _, k := range filterKeys {
			allowed[k] = true
		}
		if sn, ok := m["season"]; ok {
			allowed["season"] = true
			if id, ok := c.str(sn); ok {
				if i, ok := s.seasonIdx[id]; ok {
					cd.season = i
				} else {
					c.add(sn.path, "unknown season %q", id)
				}
			}
		}
		if cn, ok := m["count"]; ok {
			allowed["count"] = true
			cd.count = s.compileOps(c, cn, fieldRef{text: "count", kind: profile.KindNumber, season: -1}, nil)
			if cn.isMap() && len(cd.count) == 0 {
				c.add(cn.path, "needs a comparison like {gte: 3}")
			}
			checkCount(c, cn, cd.count)
		} else {
			cd.count = []op{{kind: opGte, name: "gte", num: 1, vk: profile.KindNumber, text: "1"}}
		}
		if w, ok := m["within"]; ok {
			allowed["within"] = true
			cd.within, _ = c.duration(w)
		}
	}
	for k, v := range m {
		if allowed[k] || isOperator(k) && kind == "field" {
			continue
		}
		c.add(v.path, "%q does not belong in a %s condition", k, kind)
	}
	return cd
}

type opKind uint8

const (
	opEq opKind = iota + 1
	opNe
	opLt
	opLte
	opGt
	opGte
	opIn
	opNin
	opContains
	opPrefix
	opSuffix
	opExists
)

var opNames = map[string]opKind{"eq": opEq, "ne": opNe, "lt": opLt, "lte": opLte, "gt": opGt, "gte": opGte,
	"in": opIn, "nin": opNin, "contains": opContains, "prefix": opPrefix, "suffix": opSuffix, "exists": opExists}

func isOperator(k string) bool { _, ok := opNames[k]; return ok }

// op is one compiled comparison with its operand pre-parsed.
type op struct {
	kind  opKind
	name  string
	vk    profile.Kind // the operand's kind
	str   string
	num   float64
	time  int64         // dates: unix seconds
	dur   time.Duration // durations
	isDur bool
	set   map[string]struct{}
	text  string // the operand as written, for explain
}

// compileOps compiles the operators of a field (or score/count) condition.
// only, when set, lists the other keys of the mapping (already checked).
func (s *Set) compileOps(c *checker, n node, f fieldRef, only map[string]bool) []op {
	if !n.isMap() {
		if only == nil {
			c.add(n.path, "must be a comparison like {gte: 3}")
		}
		return nil
	}
	var ops []op
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		v := node{n.Content[i+1], n.at(k)}
		kind, ok := opNames[k]
		if !ok {
			if only == nil {
				c.add(v.path, "unknown operator %q; use eq, ne, lt, lte, gt, gte, in, nin, contains, prefix, suffix or exists", k)
			}
			continue
		}
		o := op{kind: kind, name: k}
		if msg := s.compileOperand(&o, v, f); msg != "" {
			c.add(v.path, "%s", msg)
			continue
		}
		ops = append(ops, o)
	}
	return ops
}

func (s *Set) compileOperand(o *op, v node, f fieldRef) string {
	o.text = v.Value
	known := f.kind
	typeName := known.String()
	if f.dur {
		typeName = "duration"
	}
	switch o.kind {
	case opExists:
		if !v.isScalar() || v.Tag != "!!bool" {
			return "exists takes true or false"
		}
		b, _ := strconv.ParseBool(v.Value)
		o.vk, o.num = profile.KindBool, boolNum(b)
		return ""
	case opIn, opNin:
		if !v.isList() {
			return o.name + " takes a list of values"
		}
		if known == profile.KindBool || known == profile.KindDate || f.dur {
			return o.name + " does not apply to " + f.text + ", a " + typeName
		}
		o.set = make(map[string]struct{}, len(v.Content))
		for _, e := range v.Content {
			if e.Kind != 8 /* yaml.ScalarNode */ {
				return o.name + " takes a list of plain values"
			}
			val := e.Value
			if known == profile.KindNumber {
				fl, err := strconv.ParseFloat(val, 64)
				if err != nil {
					return o.name + " on " + f.text + " takes numbers; " + strconv.Quote(val) + " is not one"
				}
				val = strconv.FormatFloat(fl, 'f', -1, 64)
			}
			o.set[val] = struct{}{}
		}
		o.text = strings.Join(setKeys(o.set), ", ")
		return ""
	}
	if !v.isScalar() || v.Tag == "!!null" {
		return o.name + " takes a single value"
	}
	switch o.kind {
	case opContains:
		if known != profile.KindString && known != profile.KindList && known != profile.KindNone {
			return "contains applies to text and lists; " + f.text + " is a " + typeName
		}
		o.vk, o.str = profile.KindString, v.Value
		return ""
	case opPrefix, opSuffix:
		if known != profile.KindString && known != profile.KindNone {
			return o.name + " applies to text; " + f.text + " is a " + typeName
		}
		o.vk, o.str = profile.KindString, v.Value
		return ""
	}
	// eq ne lt lte gt gte: the operand's type follows the field's.
	ordered := o.kind == opLt || o.kind == opLte || o.kind == opGt || o.kind == opGte
	switch {
	case f.dur:
		d, ok := ParseDuration(v.Value)
		if !ok {
			return f.text + " is a duration; compare it with one like 30m or 14d, not " + strconv.Quote(v.Value)
		}
		o.isDur, o.dur = true, d
	case known == profile.KindNumber:
		fl, err := strconv.ParseFloat(v.Value, 64)
		if err != nil || (v.Tag != "!!int" && v.Tag != "!!float") {
			return f.text + " is a number; " + strconv.Quote(v.Value) + " is not one"
		}
		o.vk, o.num = profile.KindNumber, fl
	case known == profile.KindBool:
		if ordered {
			return o.name + " does not apply to " + f.text + ", a bool"
		}
		if v.Tag != "!!bool" {
			return f.text + " is true or false; compare it with true or false"
		}
		b, _ := strconv.ParseBool(v.Value)
		o.vk, o.num = profile.KindBool, boolNum(b)
	case known == profile.KindDate:
		if d, ok := ParseDuration(v.Value); ok {
			o.isDur, o.dur = true, d
		} else if t, ok := parseDate(v.Value, s.loc); ok {
			o.vk, o.time = profile.KindDate, t.Unix()
		} else {
			return f.text + " is a date; compare it with a date like 2026-11-10 or an age like 14d"
		}
	case known == profile.KindString:
		if ordered {
			return o.name + " does not apply to " + f.text + ", which is text; use eq, ne, in, contains, prefix or suffix"
		}
		if _, ok := ParseDuration(v.Value); ok && v.Tag == "!!str" && f.scope == scopeContext {
			return f.text + " is text; a duration like " + v.Value + " does not compare with it"
		}
		o.vk, o.str = profile.KindString, v.Value
	case known == profile.KindList:
		return o.name + " does not apply to " + f.text + ", a list; use contains, in, nin or exists"
	default: // undeclared profile field: the operand keeps its YAML type
		switch v.Tag {
		case "!!int", "!!float":
			o.vk, o.num = profile.KindNumber, mustFloat(v.Value)
		case "!!bool":
			b, _ := strconv.ParseBool(v.Value)
			o.vk, o.num = profile.KindBool, boolNum(b)
		default:
			if d, ok := ParseDuration(v.Value); ok && ordered {
				o.isDur, o.dur = true, d
			} else if t, ok := parseDate(v.Value, s.loc); ok && len(v.Value) == len(time.DateOnly) {
				o.vk, o.time, o.str = profile.KindDate, t.Unix(), v.Value
			} else {
				o.vk, o.str = profile.KindString, v.Value
			}
		}
	}
	return ""
}

func boolNum(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func mustFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

func setKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}
