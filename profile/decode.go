package profile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// ErrInvalid is wrapped by every error about input from outside: events,
// contacts, profile references. edge turns it into a 400.
var ErrInvalid = errors.New("invalid input")

// InputError names the offending place in a request body, such as
// events[2].sku, so that the caller can fix it.
type InputError struct {
	Path    string
	Message string
}

func (e *InputError) Error() string { return e.Path + ": " + e.Message }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *InputError) Unwrap() error { return ErrInvalid }

func inputErr(path, msg string) error { return &InputError{Path: path, Message: msg} }

// DecodeOptions say what a caller may send.
type DecodeOptions struct {
	Trusted   bool            // the caller has the API key: past ts and contact events allowed
	Fields    map[string]Kind // declared custom fields: values are coerced to these kinds
	Seasons   []Season        // the seasons an event's "season" may name
	MaxEvents int             // 0 means MaxEvents
	Now       time.Time       // for rejecting future ts; zero means time.Now
}

// standardKinds are the types of the standard profile fields; a value of
// another type is coerced or rejected like a declared custom field.
var standardKinds = map[string]Kind{
	"first_name": KindString, "last_name": KindString, "language": KindString,
	"country": KindString, "city": KindString, "gender": KindString,
	"phone": KindString, "birthday": KindDate,
}

// eventKeys lists the properties each event type accepts besides type,
// season and ts. Anything else is an error: a typo must not be silently lost.
var eventKeys = [...][]string{
	PageView:      {"url", "category"},
	Click:         {"target", "url"},
	CartAdd:       {"sku", "category", "price", "quantity", "gift"},
	CartRemove:    {"sku", "quantity"},
	Purchase:      {"order_id", "items"},
	EmailOpen:     {"campaign"},
	EmailClick:    {"campaign", "url"},
	FormSubmit:    {"form", "fields"},
	Identify:      {"email", "customer_id", "fields", "token"},
	InterestEvent: {"name", "on"},
	ConsentEvent:  {"purposes"},
}

// DecodeEvents validates and decodes a JSON list of events. The batch is
// valid as a whole or rejected with the first problem found, named by its
// path (events[2].sku).
func DecodeEvents(v *fastjson.Value, o DecodeOptions) ([]Event, error) {
	if v == nil {
		return nil, nil
	}
	arr, err := v.Array()
	if err != nil {
		return nil, inputErr("events", "must be a list of events")
	}
	limit := o.MaxEvents
	if limit <= 0 {
		limit = MaxEvents
	}
	if len(arr) > limit {
		return nil, inputErr("events", "at most "+strconv.Itoa(limit)+" events per request")
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	out := make([]Event, len(arr))
	for i, ev := range arr {
		d := eventDecoder{opts: &o, now: now, path: "events[" + strconv.Itoa(i) + "]"}
		if err := d.decode(ev, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type eventDecoder struct {
	opts *DecodeOptions
	now  time.Time
	path string
}

func (d *eventDecoder) at(key string) string { return d.path + "." + key }

func (d *eventDecoder) decode(v *fastjson.Value, ev *Event) error {
	obj, err := v.Object()
	if err != nil {
		return inputErr(d.path, "an event must be an object")
	}
	tv := obj.Get("type")
	if tv == nil {
		return inputErr(d.at("type"), "required")
	}
	ts, err := tv.StringBytes()
	if err != nil {
		return inputErr(d.at("type"), "must be a string")
	}
	ev.Type = ParseEventType(string(ts))
	if ev.Type == EventUnknown {
		return inputErr(d.at("type"), "unknown event type "+strconv.Quote(string(ts))+"; use page_view, click, cart_add, cart_remove, purchase, email_open, email_click, form_submit, identify, interest or consent")
	}
	ev.Trusted = d.opts.Trusted
	allowed := eventKeys[ev.Type]
	var bad string
	obj.Visit(func(k []byte, _ *fastjson.Value) {
		if bad != "" {
			return
		}
		key := string(k)
		switch key {
		case "type", "season", "ts":
			return
		}
		for _, a := range allowed {
			if a == key {
				return
			}
		}
		bad = key
	})
	if bad != "" {
		return inputErr(d.at(bad), "not a property of "+ev.Type.String())
	}
	if ev.Season, err = d.optString(obj, "season", maxName); err != nil {
		return err
	}
	if ev.Season != "" && !d.knownSeason(ev.Season) {
		return inputErr(d.at("season"), "unknown season "+strconv.Quote(ev.Season)+d.seasonHint())
	}
	if err := d.ts(obj.Get("ts"), ev); err != nil {
		return err
	}
	switch ev.Type {
	case PageView:
		if ev.URL, err = d.url(obj, "url", true); err != nil {
			return err
		}
		ev.Category, err = d.optString(obj, "category", maxName)
	case Click:
		if ev.Target, err = d.reqString(obj, "target", maxName*4); err != nil {
			return err
		}
		ev.URL, err = d.url(obj, "url", false)
	case CartAdd, CartRemove:
		if ev.SKU, err = d.reqString(obj, "sku", maxName*2); err != nil {
			return err
		}
		if ev.Category, err = d.optString(obj, "category", maxName); err != nil {
			return err
		}
		if ev.Price, err = d.number(obj.Get("price"), d.at("price"), 0, 1e9); err != nil {
			return err
		}
		if ev.Quantity, err = d.quantity(obj.Get("quantity"), d.at("quantity")); err != nil {
			return err
		}
		if ev.Type == CartRemove && obj.Get("quantity") == nil {
			ev.Quantity = 0 // no quantity: the whole line goes
		}
		ev.Gift, err = d.optBool(obj, "gift", false)
	case Purchase:
		if ev.OrderID, err = d.reqString(obj, "order_id", maxName*2); err != nil {
			return err
		}
		err = d.items(obj.Get("items"), ev)
	case EmailOpen, EmailClick:
		if ev.Campaign, err = d.reqString(obj, "campaign", maxName*2); err != nil {
			return err
		}
		ev.URL, err = d.url(obj, "url", false)
	case FormSubmit:
		if ev.Form, err = d.reqString(obj, "form", maxName*2); err != nil {
			return err
		}
		ev.Fields, err = d.fields(obj.Get("fields"), d.at("fields"))
	case Identify:
		err = d.identify(obj, ev)
	case InterestEvent:
		if ev.Name, err = d.reqString(obj, "name", maxName); err != nil {
			return err
		}
		ev.On, err = d.optBool(obj, "on", true)
	case ConsentEvent:
		err = d.purposes(obj.Get("purposes"), ev)
	}
	return err
}

func (d *eventDecoder) knownSeason(id string) bool {
	for i := range d.opts.Seasons {
		if d.opts.Seasons[i].ID == id {
			return true
		}
	}
	return false
}

func (d *eventDecoder) seasonHint() string {
	if len(d.opts.Seasons) == 0 {
		return "; the definitions hold no seasons"
	}
	ids := make([]string, len(d.opts.Seasons))
	for i := range d.opts.Seasons {
		ids[i] = d.opts.Seasons[i].ID
	}
	return "; use " + strings.Join(ids, ", ")
}

func (d *eventDecoder) ts(v *fastjson.Value, ev *Event) error {
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil
	}
	if !d.opts.Trusted {
		return inputErr(d.at("ts"), "only server-side callers with the API key may send ts")
	}
	var t time.Time
	switch v.Type() {
	case fastjson.TypeString:
		var err error
		if t, err = time.Parse(time.RFC3339, string(v.GetStringBytes())); err != nil {
			return inputErr(d.at("ts"), "must be an RFC 3339 time like 2026-11-24T12:00:00Z")
		}
	case fastjson.TypeNumber:
		f := v.GetFloat64()
		if f < 0 || f > 1e11 {
			return inputErr(d.at("ts"), "must be unix seconds")
		}
		t = time.Unix(int64(f), 0)
	default:
		return inputErr(d.at("ts"), "must be an RFC 3339 time or unix seconds")
	}
	if t.After(d.now.Add(5 * time.Minute)) {
		return inputErr(d.at("ts"), "lies in the future")
	}
	if t.Unix() <= 0 {
		return inputErr(d.at("ts"), "lies before 1970")
	}
	ev.TS = t.Unix()
	return nil
}

func (d *eventDecoder) reqString(obj *fastjson.Object, key string, max int) (string, error) {
	v := obj.Get(key)
	if v == nil || v.Type() == fastjson.TypeNull {
		return "", inputErr(d.at(key), "required")
	}
	s, err := d.str(v, d.at(key), max)
	if err == nil && s == "" {
		return "", inputErr(d.at(key), "must not be empty")
	}
	return s, err
}

func (d *eventDecoder) optString(obj *fastjson.Object, key string, max int) (string, error) {
	v := obj.Get(key)
	if v == nil || v.Type() == fastjson.TypeNull {
		return "", nil
	}
	return d.str(v, d.at(key), max)
}

// id accepts a customer id as a string or a whole number, since shops keep
// them either way.
func (d *eventDecoder) id(v *fastjson.Value, path string) (string, error) {
	if v.Type() == fastjson.TypeNumber {
		n, err := v.Int64()
		if err != nil {
			return "", inputErr(path, "must be a string or a whole number")
		}
		return strconv.FormatInt(n, 10), nil
	}
	s, err := d.str(v, path, maxName*2)
	if err == nil && s == "" {
		return "", inputErr(path, "must not be empty")
	}
	return s, err
}

func (d *eventDecoder) str(v *fastjson.Value, path string, max int) (string, error) {
	if v.Type() != fastjson.TypeString {
		return "", inputErr(path, "must be a string")
	}
	s := string(v.GetStringBytes())
	if len(s) > max {
		return "", inputErr(path, "longer than "+strconv.Itoa(max)+" bytes")
	}
	if !utf8.ValidString(s) {
		return "", inputErr(path, "not valid UTF-8")
	}
	return strings.TrimSpace(s), nil
}

func (d *eventDecoder) optBool(obj *fastjson.Object, key string, def bool) (bool, error) {
	v := obj.Get(key)
	if v == nil || v.Type() == fastjson.TypeNull {
		return def, nil
	}
	b, err := v.Bool()
	if err != nil {
		return false, inputErr(d.at(key), "must be true or false")
	}
	return b, nil
}

func (d *eventDecoder) number(v *fastjson.Value, path string, lo, hi float64) (float64, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return 0, nil
	}
	f, err := v.Float64()
	if err != nil || math.IsNaN(f) || f < lo || f > hi {
		return 0, inputErr(path, "must be a number from "+strconv.FormatFloat(lo, 'f', -1, 64)+" to "+strconv.FormatFloat(hi, 'f', -1, 64))
	}
	return f, nil
}

func (d *eventDecoder) quantity(v *fastjson.Value, path string) (int, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return 1, nil
	}
	n, err := v.Int()
	if err != nil || n < 1 || n > 10000 {
		return 0, inputErr(path, "must be a whole number from 1 to 10000")
	}
	return n, nil
}

// url keeps the path of a URL only: no scheme, host, query or fragment, so
// that no personal data in query strings ends up in a profile.
func (d *eventDecoder) url(obj *fastjson.Object, key string, required bool) (string, error) {
	v := obj.Get(key)
	if v == nil || v.Type() == fastjson.TypeNull {
		if required {
			return "", inputErr(d.at(key), "required")
		}
		return "", nil
	}
	s, err := d.str(v, d.at(key), 4096)
	if err != nil {
		return "", err
	}
	p, ok := URLPath(s)
	if !ok {
		return "", inputErr(d.at(key), "must be a path like /sneakers or an absolute http(s) URL")
	}
	return p, nil
}

// URLPath returns the path of a URL or path, without query and fragment,
// cut to the kept length.
func URLPath(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	if s[0] != '/' || strings.HasPrefix(s, "//") {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", false
		}
		s = u.EscapedPath()
		if s == "" {
			s = "/"
		}
	} else if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	if len(s) > maxURL {
		s = s[:maxURL]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s, true
}

func (d *eventDecoder) items(v *fastjson.Value, ev *Event) error {
	path := d.at("items")
	if v == nil {
		return inputErr(path, "required")
	}
	arr, err := v.Array()
	if err != nil {
		return inputErr(path, "must be a list of order lines")
	}
	if len(arr) == 0 || len(arr) > MaxItems {
		return inputErr(path, "must hold 1 to "+strconv.Itoa(MaxItems)+" lines")
	}
	ev.Items = make([]Item, len(arr))
	for i, iv := range arr {
		ip := path + "[" + strconv.Itoa(i) + "]"
		obj, err := iv.Object()
		if err != nil {
			return inputErr(ip, "an order line must be an object")
		}
		var bad string
		obj.Visit(func(k []byte, _ *fastjson.Value) {
			switch string(k) {
			case "sku", "category", "price", "quantity", "gift":
			default:
				if bad == "" {
					bad = string(k)
				}
			}
		})
		if bad != "" {
			return inputErr(ip+"."+bad, "not a property of an order line")
		}
		it := &ev.Items[i]
		sub := eventDecoder{opts: d.opts, now: d.now, path: ip}
		if it.SKU, err = sub.reqString(obj, "sku", maxName*2); err != nil {
			return err
		}
		if it.Category, err = sub.optString(obj, "category", maxName); err != nil {
			return err
		}
		if it.Price, err = sub.number(obj.Get("price"), ip+".price", 0, 1e9); err != nil {
			return err
		}
		if it.Quantity, err = sub.quantity(obj.Get("quantity"), ip+".quantity"); err != nil {
			return err
		}
		if it.Gift, err = sub.optBool(obj, "gift", false); err != nil {
			return err
		}
	}
	return nil
}

func (d *eventDecoder) identify(obj *fastjson.Object, ev *Event) error {
	var err error
	if v := obj.Get("email"); v != nil && v.Type() != fastjson.TypeNull {
		s, err := d.str(v, d.at("email"), maxIdent)
		if err != nil {
			return err
		}
		if ev.Email, err = NormaliseEmail(s); err != nil {
			return inputErr(d.at("email"), err.Error())
		}
	}
	if v := obj.Get("customer_id"); v != nil && v.Type() != fastjson.TypeNull {
		if ev.Customer, err = d.id(v, d.at("customer_id")); err != nil {
			return err
		}
	}
	if ev.Email == "" && ev.Customer == "" {
		return inputErr(d.at("email"), "identify needs an email or a customer_id")
	}
	if v := obj.Get("token"); v != nil && v.Type() != fastjson.TypeNull {
		b, err := v.StringBytes()
		if err != nil || len(b) == 0 || len(b) > MaxTokenLen {
			return inputErr(d.at("token"), "must be an identity token (a JWT) of at most "+strconv.Itoa(MaxTokenLen)+" bytes")
		}
		ev.Token = string(b)
	}
	ev.Fields, err = d.fields(obj.Get("fields"), d.at("fields"))
	return err
}

func (d *eventDecoder) purposes(v *fastjson.Value, ev *Event) error {
	path := d.at("purposes")
	if v == nil {
		return inputErr(path, "required")
	}
	obj, err := v.Object()
	if err != nil || obj.Len() == 0 {
		return inputErr(path, `must be an object like {"profiling": true}`)
	}
	if obj.Len() > MaxConsents {
		return inputErr(path, "at most "+strconv.Itoa(MaxConsents)+" purposes")
	}
	ev.Purposes = make(map[string]bool, obj.Len())
	obj.Visit(func(k []byte, pv *fastjson.Value) {
		if err != nil {
			return
		}
		name := string(k)
		if !validName(name) {
			err = inputErr(path+"."+name, "a purpose name is 1-64 characters of a-z, 0-9, _ and -")
			return
		}
		b, berr := pv.Bool()
		if berr != nil {
			err = inputErr(path+"."+name, "must be true or false")
			return
		}
		ev.Purposes[name] = b
	})
	return err
}

// fields decodes explicit profile fields: declared and standard fields are
// coerced to their kind ("45" → 45) or rejected naming the field; others
// keep the JSON type they arrived with. null removes a field.
func (d *eventDecoder) fields(v *fastjson.Value, path string) (map[string]Value, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil, nil
	}
	obj, err := v.Object()
	if err != nil {
		return nil, inputErr(path, "must be an object of field names and values")
	}
	if obj.Len() > MaxFields {
		return nil, inputErr(path, "at most "+strconv.Itoa(MaxFields)+" fields")
	}
	out := make(map[string]Value, obj.Len())
	obj.Visit(func(k []byte, fv *fastjson.Value) {
		if err != nil {
			return
		}
		name := string(k)
		fp := path + "." + name
		if !validName(name) {
			err = inputErr(fp, "a field name is 1-64 characters of a-z, 0-9, _ and -")
			return
		}
		switch name {
		case "email", "customer_id":
			err = inputErr(fp, "set through identify's email and customer_id, not as a field")
			return
		}
		kind, declared := d.opts.Fields[name]
		if !declared {
			kind, declared = standardKinds[name]
		}
		var val Value
		if val, err = jsonValue(fv, fp); err != nil {
			return
		}
		if declared && val.Kind != KindNone {
			if val, err = Coerce(val, kind); err != nil {
				err = inputErr(fp, err.Error())
				return
			}
		}
		out[name] = val
	})
	if err != nil {
		return out, err
	}
	// What one event sets must fit a profile's share for fields, so that
	// the newest fields are never the ones cut to keep a record bounded.
	size := 0
	for name, val := range out {
		size += fieldSize(name, Field{Value: val, At: math.MaxInt64})
	}
	if size > ShareFields {
		return nil, inputErr(path, "at most "+strconv.Itoa(ShareFields)+" bytes of field names and values together (the bound of a profile's fields)")
	}
	return out, nil
}

func validName(s string) bool {
	if s == "" || len(s) > maxName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// jsonValue turns a JSON value into a field value of its own type.
func jsonValue(v *fastjson.Value, path string) (Value, error) {
	switch v.Type() {
	case fastjson.TypeNull:
		return Value{}, nil
	case fastjson.TypeString:
		s := string(v.GetStringBytes())
		if len(s) > maxValue || !utf8.ValidString(s) {
			return Value{}, inputErr(path, "must be valid UTF-8 of at most "+strconv.Itoa(maxValue)+" bytes")
		}
		return Value{Kind: KindString, Str: s}, nil
	case fastjson.TypeNumber:
		f := v.GetFloat64()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return Value{}, inputErr(path, "must be a finite number")
		}
		return Value{Kind: KindNumber, Num: f}, nil
	case fastjson.TypeTrue:
		return Value{Kind: KindBool, Num: 1}, nil
	case fastjson.TypeFalse:
		return Value{Kind: KindBool}, nil
	case fastjson.TypeArray:
		arr := v.GetArray()
		if len(arr) > MaxListItems {
			return Value{}, inputErr(path, "at most "+strconv.Itoa(MaxListItems)+" items")
		}
		l := make([]string, 0, len(arr))
		for i, e := range arr {
			var s string
			switch e.Type() {
			case fastjson.TypeString:
				s = string(e.GetStringBytes())
			case fastjson.TypeNumber:
				s = e.String()
			default:
				return Value{}, inputErr(path+"["+strconv.Itoa(i)+"]", "list items must be strings")
			}
			if len(s) > maxValue || !utf8.ValidString(s) {
				return Value{}, inputErr(path+"["+strconv.Itoa(i)+"]", "must be valid UTF-8 of at most "+strconv.Itoa(maxValue)+" bytes")
			}
			l = append(l, s)
		}
		return Value{Kind: KindList, List: l}, nil
	}
	return Value{}, inputErr(path, "must be a string, number, bool, list or null")
}

// Coerce converts v to kind: "45" → 45, "true" → true, "2001-02-03" → a
// date, "a,b" → a list; a value that does not convert is an error.
func Coerce(v Value, kind Kind) (Value, error) {
	if v.Kind == kind || v.Kind == KindNone {
		return v, nil
	}
	switch kind {
	case KindString:
		switch v.Kind {
		case KindNumber:
			return Value{Kind: KindString, Str: strconv.FormatFloat(v.Num, 'f', -1, 64)}, nil
		case KindBool:
			return Value{Kind: KindString, Str: strconv.FormatBool(v.Num != 0)}, nil
		}
	case KindNumber:
		if v.Kind == KindString {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v.Str), 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return Value{Kind: KindNumber, Num: f}, nil
			}
		}
		return Value{}, errors.New("must be a number")
	case KindBool:
		if v.Kind == KindString {
			if b, err := strconv.ParseBool(strings.TrimSpace(v.Str)); err == nil {
				if b {
					return Value{Kind: KindBool, Num: 1}, nil
				}
				return Value{Kind: KindBool}, nil
			}
		}
		return Value{}, errors.New("must be true or false")
	case KindDate:
		if v.Kind == KindString {
			if t, ok := ParseDate(v.Str); ok {
				return Value{Kind: KindDate, Time: t.Unix()}, nil
			}
		}
		return Value{}, errors.New("must be a date like 2006-01-02 or an RFC 3339 time")
	case KindList:
		if v.Kind == KindString {
			parts := strings.Split(v.Str, ",")
			if len(parts) > MaxListItems {
				return Value{}, errors.New("at most " + strconv.Itoa(MaxListItems) + " items")
			}
			for i := range parts {
				parts[i] = strings.TrimSpace(parts[i])
			}
			return Value{Kind: KindList, List: parts}, nil
		}
		return Value{}, errors.New("must be a list")
	}
	return Value{}, errors.New("must be a " + kind.String())
}

// ParseDate parses a date (2006-01-02, midnight UTC) or an RFC 3339 time.
func ParseDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, true
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// NormaliseEmail trims and lower-cases an e-mail address and checks its
// shape (something@something).
func NormaliseEmail(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || len(s) > maxIdent || strings.ContainsAny(s, " \t\r\n<>,;") {
		return "", errors.New("not an e-mail address")
	}
	return s, nil
}

// ContactIdent decodes a contact ({"email": …} or {"customer_id": …}) into
// an identifier reference: "email:<address>" or "customer:<id>".
func ContactIdent(v *fastjson.Value) (string, error) {
	obj, err := v.Object()
	if err != nil {
		return "", inputErr("contact", `must be an object like {"email": "sam@example.nl"} or {"customer_id": "42"}`)
	}
	d := eventDecoder{opts: &DecodeOptions{}, path: "contact"}
	var bad string
	obj.Visit(func(k []byte, _ *fastjson.Value) {
		if s := string(k); s != "email" && s != "customer_id" && bad == "" {
			bad = s
		}
	})
	if bad != "" {
		return "", inputErr("contact."+bad, "not a property of a contact; use email or customer_id")
	}
	if v := obj.Get("email"); v != nil && v.Type() != fastjson.TypeNull {
		s, err := d.str(v, "contact.email", maxIdent)
		if err != nil {
			return "", err
		}
		e, err := NormaliseEmail(s)
		if err != nil {
			return "", inputErr("contact.email", err.Error())
		}
		return "email:" + e, nil
	}
	var c string
	if v := obj.Get("customer_id"); v != nil && v.Type() != fastjson.TypeNull {
		if c, err = d.id(v, "contact.customer_id"); err != nil {
			return "", err
		}
	}
	if c == "" {
		return "", inputErr("contact", "needs an email or a customer_id")
	}
	return "customer:" + c, nil
}

// linkKey turns an identifier reference into the key of its identity link.
// E-mail addresses are hashed so that no address appears in a key name.
func linkKey(ref string) (string, error) {
	kind, val, ok := strings.Cut(ref, ":")
	if !ok || val == "" {
		return "", inputErr("id", "use email:<address> or customer:<id>")
	}
	switch kind {
	case "email":
		e, err := NormaliseEmail(val)
		if err != nil {
			return "", inputErr("id", err.Error())
		}
		sum := sha256.Sum256([]byte(e))
		return "email:" + hex.EncodeToString(sum[:]), nil
	case "customer":
		if len(val) > maxName*2 {
			return "", inputErr("id", "customer id too long")
		}
		return "customer:" + val, nil
	}
	return "", inputErr("id", "use email:<address> or customer:<id>")
}
