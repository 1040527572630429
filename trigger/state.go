package trigger

import (
	"bytes"
	"encoding/json"
	"slices"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
)

// maxOutbox bounds the undelivered changes one contact can hold (all
// webhooks together); past it the oldest is dropped and counted as failed,
// so a dead receiver cannot grow a profile's record without bound.
const maxOutbox = 64

// state is a profile's trigger record: per webhook the listed segments the
// contact was last reported in, the outbox of changes not yet delivered (in
// the order they happened), and the next moment time alone may change an
// answer.
type state struct {
	Members map[string][]string `json:"m,omitempty"`
	Outbox  []change            `json:"o,omitempty"`
	Flip    int64               `json:"f,omitempty"` // unix seconds; 0: none
	Dropped map[string]int64    `json:"x,omitempty"` // per webhook: changes dropped at the bound, not yet counted
}

// change is one membership change waiting for delivery. The body is fixed
// when the change happens, so every retry sends the same payload under the
// same webhook-id.
type change struct {
	ID    string          `json:"id"`
	Hook  string          `json:"h"`
	Body  json.RawMessage `json:"b"`
	At    int64           `json:"t"`           // unix ms when it happened
	Tries int             `json:"n,omitempty"` // failed attempts so far
	Next  int64           `json:"a,omitempty"` // unix ms of the next attempt; 0: now
	Err   string          `json:"e,omitempty"` // the last attempt's error
}

func decodeState(data []byte) state {
	var st state
	if len(data) > 0 {
		_ = json.Unmarshal(data, &st) // an unreadable record starts afresh
	}
	return st
}

func (st *state) encode() []byte {
	b, _ := json.Marshal(st)
	return b
}

// payload is the body of a webhook POST.
type payload struct {
	Type      string      `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      payloadData `json:"data"`
}

type payloadData struct {
	Segment string         `json:"segment"`
	Contact contact        `json:"contact"`
	Fields  map[string]any `json:"fields"`
}

type contact struct {
	Email      string `json:"email,omitempty"`
	CustomerID string `json:"customer_id,omitempty"`
}

// watcher is the profile.Watcher of one definitions revision.
type watcher struct {
	e   *Engine
	set *rules.Set
}

// Watch compares the listed segments' answers on the profile as it will be
// stored with what each webhook was last told, queues a change for every
// difference, and works out when to look again.
func (w *watcher) Watch(snap *profile.Snapshot, now time.Time) profile.Watch {
	p := snap.Primary
	if !p.IsContact() && snap.Trigger.Version == 0 {
		return profile.Watch{}
	}
	st := decodeState(snap.Trigger.Data)
	in := &rules.Input{Profile: p, Seasonal: snap.Seasonal, Now: now}
	isKnown := p.IsContact()
	queued := 0
	flip := int64(0)
	members := map[string][]string{}
	for _, wh := range w.set.Webhooks() {
		consented := wh.Consent == "" || p.HasConsent(wh.Consent)
		prev := st.Members[wh.ID]
		var cur []string
		for _, seg := range wh.Segments {
			in1 := false
			if isKnown {
				in1, _ = w.set.Member(seg, in)
				if t, _ := w.set.NextChange(seg, in); !t.IsZero() && (flip == 0 || t.Unix() < flip) {
					flip = t.Unix()
				}
			}
			in1 = in1 && consented
			was := slices.Contains(prev, seg)
			if in1 {
				cur = append(cur, seg)
			}
			if in1 == was {
				continue
			}
			typ := "segment.entered"
			if !in1 {
				typ = "segment.exited"
			}
			body, _ := json.Marshal(payload{Type: typ, Timestamp: now.UTC(), Data: payloadData{
				Segment: seg,
				Contact: contact{Email: p.Email, CustomerID: p.CustomerID},
				Fields:  fieldsOf(p, wh, consented),
			}})
			st.Outbox = append(st.Outbox, change{ID: newMessageID(), Hook: wh.ID, Body: body, At: now.UnixMilli()})
			queued++
		}
		if len(cur) > 0 {
			members[wh.ID] = cur
		}
	}
	if len(members) == 0 {
		members = nil
	}
	for len(st.Outbox) > maxOutbox {
		if st.Dropped == nil {
			st.Dropped = map[string]int64{}
		}
		st.Dropped[st.Outbox[0].Hook]++
		st.Outbox = st.Outbox[1:]
	}
	st.Members, st.Flip = members, flip
	data := st.encode()
	if bytes.Equal(data, snap.Trigger.Data) {
		return profile.Watch{}
	}
	// A new change is due at once, but only once the Put is done: until
	// then the schedule says "after the grace period" (Schedule).
	return profile.Watch{Data: data, Due: st.due(now.Add(w.e.cfg.Grace).UnixMilli()), Queued: queued}
}

// due is the next moment the profile needs a look: its earliest pending
// attempt (an attempt due now counts as asap, in unix ms) or the next flip.
func (st *state) due(asap int64) time.Time {
	var t int64
	for _, c := range st.Outbox {
		n := c.Next
		if n == 0 {
			n = asap
		}
		if t == 0 || n < t {
			t = n
		}
	}
	if st.Flip != 0 && (t == 0 || st.Flip*1000 < t) {
		t = st.Flip * 1000
	}
	if t == 0 {
		return time.Time{}
	}
	return time.UnixMilli(t)
}

// fieldsOf returns the webhook's payload fields present on p; none without
// the webhook's consent.
func fieldsOf(p *profile.Profile, wh rules.Webhook, consented bool) map[string]any {
	out := map[string]any{}
	if !consented {
		return out
	}
	for _, name := range wh.Fields {
		if v, ok := p.FieldValue(name); ok {
			out[name] = v
		}
	}
	return out
}
