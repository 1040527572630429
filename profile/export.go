package profile

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Export returns everything held on the profile ref names, as a JSON-ready
// value (right of access): the primary profile, every seasonal profile of
// the current seasons whatever its cycle, and the identifiers linked to it.
// A profile that holds nothing is ErrNotFound.
func (s *Service) Export(ctx context.Context, ref string, pol *Policy) (any, error) {
	pid, err := s.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	ids := seasonIDs(pol)
	recs, err := s.store.Get(ctx, pid, ids)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if target, _, ok := decodeForward(recs[0].Data); ok && recs[0].Version != 0 {
		// A visitor merged into a contact: everything is the contact's now.
		pid = target
		if recs, err = s.store.Get(ctx, pid, ids); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
	}
	if isEmpty(&Snapshot{Records: recs}) {
		return nil, ErrNotFound
	}
	out := map[string]any{"id": pid}
	if p := decodeRecord(recs[0]); p != nil {
		out["primary"] = ExportProfile(p)
	}
	seasonal := map[string]any{}
	for i, id := range ids {
		if p := decodeRecord(recs[i+1]); p != nil {
			seasonal[id] = ExportProfile(p)
		}
	}
	out["seasonal"] = seasonal
	return out, nil
}

func unix(ts int64) any {
	if ts == 0 {
		return nil
	}
	return time.Unix(ts, 0).UTC().Format(time.RFC3339)
}

// ExportValue returns a field value as JSON would hold it.
func ExportValue(v Value) any {
	switch v.Kind {
	case KindString:
		return v.Str
	case KindNumber:
		return v.Num
	case KindBool:
		return v.Num != 0
	case KindDate:
		return time.Unix(v.Time, 0).UTC().Format(time.DateOnly)
	case KindList:
		return v.List
	}
	return nil
}

var sourceNames = map[Source]string{SourceVisitor: "visitor", SourceShop: "shop", SourceScoring: "scoring"}

// ExportProfile returns p as a JSON-ready map, with readable times.
func ExportProfile(p *Profile) map[string]any {
	fields := map[string]any{}
	for k, f := range p.Fields {
		fields[k] = ExportValue(f.Value)
	}
	interests := map[string]any{}
	for k, in := range p.Interests {
		interests[k] = map[string]any{"on": in.On, "source": sourceNames[in.Source], "at": unix(in.At)}
	}
	consents := map[string]any{}
	for k, c := range p.Consents {
		consents[k] = map[string]any{"granted": c.Granted, "at": unix(c.At)}
	}
	items := make([]any, 0, len(p.Cart.Items))
	for _, it := range p.Cart.Items {
		items = append(items, map[string]any{"sku": it.SKU, "category": it.Category, "price": it.Price, "quantity": it.Quantity, "gift": it.Gift})
	}
	orders := make([]any, 0, len(p.Orders))
	for _, o := range p.Orders {
		orders = append(orders, map[string]any{"order_id": o.ID, "at": unix(o.At), "value": o.Value})
	}
	behaviour := make([]any, 0, len(p.Behaviour))
	for i := range p.Behaviour {
		c := &p.Behaviour[i]
		m := map[string]any{"event": c.Type.String(), "total": c.Total, "first": unix(c.First), "last": unix(c.Last)}
		for k, v := range map[string]string{"url": c.Key.URL, "category": c.Key.Category, "sku": c.Key.SKU, "campaign": c.Key.Campaign, "form": c.Key.Form, "target": c.Key.Target} {
			if v != "" {
				m[k] = v
			}
		}
		days := map[string]uint32{}
		for _, d := range c.Days {
			days[time.Unix(int64(d.Day)*86400, 0).UTC().Format(time.DateOnly)] = d.N
		}
		m["days"] = days
		behaviour = append(behaviour, m)
	}
	out := map[string]any{
		"known":      p.Known,
		"first_seen": unix(p.FirstSeen),
		"last_seen":  unix(p.LastSeen),
		"visits":     p.Visits,
		"fields":     fields,
		"interests":  interests,
		"consents":   consents,
		"score":      p.Score,
		"cart":       map[string]any{"items": items, "value": p.Cart.Value(), "updated_at": unix(p.Cart.UpdatedAt)},
		"orders":     orders,
		"behaviour":  behaviour,
	}
	if p.Email != "" {
		out["email"] = p.Email
	}
	if p.CustomerID != "" {
		out["customer_id"] = p.CustomerID
	}
	if len(p.Aliases) > 0 {
		out["merged_visitors"] = p.Aliases
	}
	if len(p.Experiments) > 0 {
		xs := make([]any, 0, len(p.Experiments))
		for _, a := range p.Experiments {
			id := a.Experiment
			if id == HoldoutID {
				id = "holdout"
			}
			m := map[string]any{"experiment": id, "variant": a.Variant, "exposed_at": unix(a.At)}
			if a.Converted != 0 {
				m["converted_at"] = unix(a.Converted)
			}
			xs = append(xs, m)
		}
		out["experiments"] = xs
	}
	if p.Season != "" {
		out["season"] = p.Season
		out["cycle"] = strconv.Itoa(p.Cycle)
	}
	return out
}
