package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // zones work in a distroless image

	"github.com/etalage/etalage/profile"
	"go.yaml.in/yaml/v3"
)

// MaxDocument is the largest definitions document accepted.
const MaxDocument = 1 << 20

// Set is a compiled definitions document: immutable, safe for concurrent
// use. All parsing happened in Compile; deciding only evaluates.
type Set struct {
	loc       *time.Location
	fields    map[string]profile.Kind
	seasons   []profile.Season
	seasonIdx map[string]int
	scoring   []scoreRule
	segments  []*segment
	segIdx    map[string]int
	slots     map[string][]*Block // per slot, best first: priority desc, id asc
	warnings  []Problem           // doubtful but valid: see Warnings
	webhooks  []Webhook

	experiments []*Experiment // document order
	expIdx      map[string]int
	expBySlot   map[string][]*Experiment
	expNodes    []node // where each experiment is, for problems
	holdout     *Holdout
}

type segment struct {
	id     string
	parent int // -1 when none
	rule   *cond
}

type scoreRule struct {
	id       string
	ev       profile.EventType
	filter   filter
	points   float64
	interest string
}

// blockExtra is what a Block holds beyond its exported fields.
type blockExtra struct {
	seg       int // -1 for everyone
	tmpl      []part
	hasHTML   bool
	from, to  time.Time // schedule; zero when open
	scheduled bool
}

// Compile parses, validates and compiles a definitions document (YAML or
// JSON). An invalid document gives a *ValidationError with every problem.
func Compile(doc []byte) (*Set, error) {
	c := &checker{}
	if len(doc) > MaxDocument {
		c.add("", "the document is larger than %d bytes", MaxDocument)
		return nil, &ValidationError{Problems: c.problems}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		c.add("", "not valid YAML or JSON: %s", msg)
		c.problems[0].Line = syntaxLine(msg)
		return nil, &ValidationError{Problems: c.problems}
	}
	s := &Set{loc: time.UTC, fields: map[string]profile.Kind{}, seasonIdx: map[string]int{}, segIdx: map[string]int{}, slots: map[string][]*Block{},
		expIdx: map[string]int{}, expBySlot: map[string][]*Experiment{}}
	if len(root.Content) == 0 || (root.Content[0].Kind == yaml.ScalarNode && root.Content[0].Tag == "!!null") {
		return s, nil
	}
	top := c.fields(node{root.Content[0], ""}, "timezone", "fields", "seasons", "scoring", "segments", "blocks", "webhooks", "experiments", "holdout")
	if n, ok := top["timezone"]; ok {
		if name, ok := c.str(n); ok {
			loc, err := time.LoadLocation(name)
			if err != nil || name == "" || name == "Local" {
				c.add(n.path, "unknown time zone %q; use a name like Europe/Amsterdam", name)
			} else {
				s.loc = loc
			}
		}
	}
	if n, ok := top["fields"]; ok {
		s.compileFields(c, n)
	}
	if n, ok := top["seasons"]; ok {
		s.compileSeasons(c, n)
	}
	if n, ok := top["scoring"]; ok {
		s.compileScoring(c, n)
	}
	var segNodes []node
	if n, ok := top["segments"]; ok {
		segNodes = s.declareSegments(c, n)
	}
	for i, n := range segNodes {
		s.compileSegment(c, i, n)
	}
	s.checkCycles(c, segNodes)
	if n, ok := top["blocks"]; ok {
		s.compileBlocks(c, n)
	}
	if n, ok := top["webhooks"]; ok {
		s.compileWebhooks(c, n)
	}
	if n, ok := top["experiments"]; ok {
		s.compileExperiments(c, n)
	}
	s.expNodes = nil
	if n, ok := top["holdout"]; ok {
		s.compileHoldout(c, n)
	}
	if len(c.problems) > 0 {
		for i := range c.problems {
			c.problems[i].Line = lineOf(&root, c.problems[i].Path)
		}
		return nil, &ValidationError{Problems: c.problems}
	}
	for i := range s.warnings {
		s.warnings[i].Line = lineOf(&root, s.warnings[i].Path)
	}
	return s, nil
}

var kindNames = map[string]profile.Kind{
	"string": profile.KindString, "number": profile.KindNumber, "bool": profile.KindBool,
	"date": profile.KindDate, "list": profile.KindList,
}

func (s *Set) compileFields(c *checker, n node) {
	for _, f := range c.list(n) {
		m := c.fields(f, "name", "type")
		name, ok1 := c.id(m["name"].orMissing(c, f.at("name")))
		t, ok2 := c.str(m["type"].orMissing(c, f.at("type")))
		if !ok1 || !ok2 {
			continue
		}
		k, ok := kindNames[t]
		if !ok {
			c.add(f.at("type"), "unknown type %q; use string, number, bool, date or list", t)
			continue
		}
		if _, dup := s.fields[name]; dup {
			c.add(f.at("name"), "field %q declared twice", name)
		}
		if _, std := standardFields[name]; std {
			c.add(f.at("name"), "%q is a standard field and cannot be declared", name)
		}
		s.fields[name] = k
	}
}

// orMissing reports a missing required key and returns a node that fails
// every check silently.
func (n node) orMissing(c *checker, path string) node {
	if n.Node == nil {
		c.add(path, "required")
		return node{&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!missing"}, path}
	}
	return n
}

func (s *Set) compileSeasons(c *checker, n node) {
	for _, sn := range c.list(n) {
		m := c.fields(sn, "id", "name", "timezone", "collect", "active", "route", "retain_days")
		id, ok := c.id(m["id"].orMissing(c, sn.at("id")))
		season := profile.Season{ID: id, Location: s.loc, RetainDays: 45}
		if ok {
			if _, dup := s.seasonIdx[id]; dup {
				c.add(sn.at("id"), "season %q defined twice", id)
			}
		}
		if tz, has := m["timezone"]; has {
			if name, ok := c.str(tz); ok {
				if loc, err := time.LoadLocation(name); err != nil || name == "" || name == "Local" {
					c.add(tz.path, "unknown time zone %q", name)
				} else {
					season.Location = loc
				}
			}
		}
		season.Collect = c.window(m["collect"].orMissing(c, sn.at("collect")))
		season.Active = season.Collect
		if a, has := m["active"]; has {
			season.Active = c.window(a)
		}
		if r, has := m["route"]; has {
			rm := c.fields(r, "gift", "categories")
			if g, has := rm["gift"]; has {
				season.Gift, _ = c.boolean(g)
			}
			if cats, has := rm["categories"]; has {
				for _, cn := range c.list(cats) {
					if v, ok := c.str(cn); ok {
						season.Categories = append(season.Categories, v)
					}
				}
			}
		}
		if r, has := m["retain_days"]; has {
			if f, ok := c.number(r); ok {
				if f < 1 || f > 3650 || f != float64(int(f)) {
					c.add(r.path, "must be a whole number of days from 1 to 3650")
				} else {
					season.RetainDays = int(f)
				}
			}
		}
		if ok {
			s.seasonIdx[id] = len(s.seasons)
			s.seasons = append(s.seasons, season)
		}
	}
}

func (c *checker) window(n node) profile.Window {
	var w profile.Window
	if n.Tag == "!!missing" {
		return w
	}
	m := c.fields(n, "from", "to")
	for _, k := range []string{"from", "to"} {
		v, ok := c.str(m[k].orMissing(c, n.at(k)))
		if !ok {
			continue
		}
		md, err := profile.ParseMonthDay(v)
		if err != nil {
			c.add(n.at(k), "%q is not a month-day like 11-01", v)
			continue
		}
		if k == "from" {
			w.From = md
		} else {
			w.To = md
		}
	}
	return w
}

func (s *Set) compileScoring(c *checker, n node) {
	seen := map[string]bool{}
	for _, sn := range c.list(n) {
		m := c.fields(sn, "id", "when", "points", "add_interest")
		r := scoreRule{}
		if id, ok := c.id(m["id"].orMissing(c, sn.at("id"))); ok {
			if seen[id] {
				c.add(sn.at("id"), "scoring rule %q defined twice", id)
			}
			seen[id] = true
			r.id = id
		}
		when := m["when"].orMissing(c, sn.at("when"))
		if when.Tag != "!!missing" {
			wm := c.fields(when, append([]string{"event"}, filterKeys...)...)
			r.ev = c.eventType(wm["event"].orMissing(c, when.at("event")))
			r.filter = c.filter(wm)
		}
		if p, ok := m["points"]; ok {
			r.points, _ = c.number(p)
		}
		if in, ok := m["add_interest"]; ok {
			r.interest, _ = c.id(in)
		}
		if _, ok := m["points"]; !ok && r.interest == "" {
			c.add(sn.path, "a scoring rule needs points, add_interest or both")
		}
		s.scoring = append(s.scoring, r)
	}
}

var filterKeys = []string{"url_contains", "url_prefix", "category", "sku", "campaign", "form", "target"}

// filter selects behaviour counters by the dimensions they are kept for.
type filter struct {
	urlContains, urlPrefix, category, sku, campaign, form, target string
}

func (c *checker) filter(m map[string]node) filter {
	var f filter
	dst := []*string{&f.urlContains, &f.urlPrefix, &f.category, &f.sku, &f.campaign, &f.form, &f.target}
	for i, k := range filterKeys {
		if n, ok := m[k]; ok {
			if v, ok := c.str(n); ok {
				if v == "" {
					c.add(n.path, "must not be empty")
				}
				*dst[i] = v
			}
		}
	}
	return f
}

func (c *checker) eventType(n node) profile.EventType {
	if n.Tag == "!!missing" {
		return profile.EventUnknown
	}
	v, ok := c.str(n)
	if !ok {
		return profile.EventUnknown
	}
	t := profile.ParseEventType(v)
	if t == profile.EventUnknown || t == profile.Identify || t == profile.InterestEvent || t == profile.ConsentEvent {
		c.add(n.path, "unknown event %q; use page_view, click, cart_add, cart_remove, purchase, email_open, email_click or form_submit", v)
	}
	return t
}

func (s *Set) declareSegments(c *checker, n node) []node {
	nodes := c.list(n)
	for i, sn := range nodes {
		s.segments = append(s.segments, &segment{parent: -1})
		if !sn.isMap() {
			continue
		}
		for j := 0; j+1 < len(sn.Content); j += 2 {
			if sn.Content[j].Value != "id" {
				continue
			}
			if id, ok := c.id(node{sn.Content[j+1], sn.at("id")}); ok {
				if _, dup := s.segIdx[id]; dup {
					c.add(sn.at("id"), "segment %q defined twice", id)
					continue
				}
				s.segIdx[id] = i
				s.segments[i].id = id
			}
		}
	}
	return nodes
}

func (s *Set) compileSegment(c *checker, i int, sn node) {
	m := c.fields(sn, "id", "name", "description", "parent", "rule")
	if _, ok := m["id"]; !ok {
		c.add(sn.at("id"), "required")
	}
	seg := s.segments[i]
	if p, ok := m["parent"]; ok {
		if id, ok := c.str(p); ok {
			if j, ok := s.segIdx[id]; ok {
				seg.parent = j
			} else {
				c.add(p.path, "unknown segment %q", id)
			}
		}
	}
	seg.rule = s.compileCond(c, m["rule"].orMissing(c, sn.at("rule")))
}

// checkCycles reports parent and segment-reference cycles, naming them.
func (s *Set) checkCycles(c *checker, nodes []node) {
	state := make([]uint8, len(s.segments)) // 0 new, 1 on the path, 2 done
	var stack []int
	var visit func(i int) bool
	visit = func(i int) bool {
		switch state[i] {
		case 1:
			start := 0
			for k, j := range stack {
				if j == i {
					start = k
				}
			}
			names := []string{}
			for _, j := range stack[start:] {
				names = append(names, s.segments[j].id)
			}
			names = append(names, s.segments[i].id)
			c.add(nodes[stack[start]].path, "segments refer to each other in a cycle: %s", strings.Join(names, " → "))
			return true
		case 2:
			return false
		}
		state[i] = 1
		stack = append(stack, i)
		deps := []int{}
		if s.segments[i].parent >= 0 {
			deps = append(deps, s.segments[i].parent)
		}
		deps = s.segments[i].rule.segmentRefs(deps)
		for _, d := range deps {
			if visit(d) {
				break
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = 2
		return false
	}
	for i := range s.segments {
		if state[i] == 0 {
			visit(i)
		}
	}
}

func (cd *cond) segmentRefs(dst []int) []int {
	if cd == nil {
		return dst
	}
	if cd.kind == condSegment && cd.seg >= 0 {
		dst = append(dst, cd.seg)
	}
	for i := range cd.children {
		dst = cd.children[i].segmentRefs(dst)
	}
	return dst
}

func (s *Set) compileBlocks(c *checker, n node) {
	seen := map[string]bool{}
	for _, bn := range c.list(n) {
		m := c.fields(bn, "id", "slot", "segment", "priority", "html", "data", "schedule")
		b := &Block{}
		x := &b.x
		x.seg = -1
		id, okID := c.id(m["id"].orMissing(c, bn.at("id")))
		if okID {
			if seen[id] {
				c.add(bn.at("id"), "block %q defined twice", id)
			}
			seen[id] = true
			b.ID = id
		}
		slot, okSlot := c.id(m["slot"].orMissing(c, bn.at("slot")))
		b.Slot = slot
		if sg, ok := m["segment"]; ok {
			if sid, ok := c.str(sg); ok {
				if j, ok := s.segIdx[sid]; ok {
					x.seg = j
					b.Segment = sid
				} else {
					c.add(sg.path, "unknown segment %q", sid)
				}
			}
		}
		if p, ok := m["priority"]; ok {
			if f, ok := c.number(p); ok {
				if f != float64(int(f)) || f < -1e6 || f > 1e6 {
					c.add(p.path, "must be a whole number")
				}
				b.Priority = int(f)
			}
		}
		if h, ok := m["html"]; ok {
			if html, ok := c.str(h); ok {
				x.hasHTML = true
				x.tmpl = s.parseTemplate(c, h.path, html)
			}
		}
		if d, ok := m["data"]; ok {
			var v any
			if err := d.Decode(&v); err != nil {
				c.add(d.path, "cannot be read: %v", err)
			} else if js, err := json.Marshal(jsonable(v)); err != nil {
				c.add(d.path, "cannot be turned into JSON: %v", err)
			} else {
				b.Data = js
			}
		}
		if !x.hasHTML && b.Data == nil {
			c.add(bn.path, "a block needs html, data or both")
		}
		if sc, ok := m["schedule"]; ok {
			x.scheduled = true
			x.from, x.to = s.schedule(c, sc)
		}
		if okID && okSlot {
			s.slots[slot] = append(s.slots[slot], b)
		}
	}
	for _, bs := range s.slots {
		sort.SliceStable(bs, func(i, j int) bool {
			if bs[i].Priority != bs[j].Priority {
				return bs[i].Priority > bs[j].Priority
			}
			return bs[i].ID < bs[j].ID
		})
	}
}

// jsonable turns YAML-decoded maps (map[string]any already in yaml.v3) into
// values encoding/json accepts.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonable(e)
		}
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = jsonable(e)
		}
	}
	return v
}

// Seasons returns the compiled seasons in document order.
func (s *Set) Seasons() []profile.Season { return s.seasons }

// Policy returns base with the seasons, scoring rules and declared fields
// of this set.
func (s *Set) Policy(base profile.Policy) *profile.Policy {
	p := base
	p.Seasons = s.seasons
	p.Scorer = s
	p.Fields = s.fields
	if len(s.experiments) > 0 || s.holdout != nil {
		p.Goals = s
	}
	return &p
}

// HasSegment reports whether the set defines segment id.
func (s *Set) HasSegment(id string) bool {
	_, ok := s.segIdx[id]
	return ok
}

// Score appends what the scoring rules matching ev add.
func (s *Set) Score(ev *profile.Event, dst []profile.ScoreHit) []profile.ScoreHit {
	for i := range s.scoring {
		r := &s.scoring[i]
		if r.ev != ev.Type || !r.filter.matchesEvent(ev) {
			continue
		}
		dst = append(dst, profile.ScoreHit{Points: r.points, Interest: r.interest})
	}
	return dst
}

func (f *filter) matchesEvent(ev *profile.Event) bool {
	if f.urlContains != "" && !strings.Contains(ev.URL, f.urlContains) {
		return false
	}
	if f.urlPrefix != "" && !strings.HasPrefix(ev.URL, f.urlPrefix) {
		return false
	}
	if f.campaign != "" && ev.Campaign != f.campaign || f.form != "" && ev.Form != f.form || f.target != "" && ev.Target != f.target {
		return false
	}
	if f.category == "" && f.sku == "" {
		return true
	}
	if ev.Type == profile.Purchase {
		for _, it := range ev.Items {
			if (f.category == "" || it.Category == f.category) && (f.sku == "" || it.SKU == f.sku) {
				return true
			}
		}
		return false
	}
	return (f.category == "" || ev.Category == f.category) && (f.sku == "" || ev.SKU == f.sku)
}

func (f *filter) matchesKey(k *profile.Key) bool {
	return (f.urlContains == "" || strings.Contains(k.URL, f.urlContains)) &&
		(f.urlPrefix == "" || strings.HasPrefix(k.URL, f.urlPrefix)) &&
		(f.category == "" || k.Category == f.category) &&
		(f.sku == "" || k.SKU == f.sku) &&
		(f.campaign == "" || k.Campaign == f.campaign) &&
		(f.form == "" || k.Form == f.form) &&
		(f.target == "" || k.Target == f.target)
}

func (f *filter) String() string {
	var b bytes.Buffer
	for i, v := range []string{f.urlContains, f.urlPrefix, f.category, f.sku, f.campaign, f.form, f.target} {
		if v != "" {
			b.WriteString(" " + filterKeys[i] + " " + strconv.Quote(v))
		}
	}
	return b.String()
}
