package profile

import (
	"encoding/binary"
	"unsafe"
)

// Packed is a Snapshot reduced to what it was read from: the stored
// records and their versions, in one immutable string. It is the form a
// cache holds: about the size of the records (a typical returning visitor
// takes 1 KB, against 8 KB for the decoded profiles beside their records),
// one allocation, and nothing the garbage collector has to scan. Unpack
// turns it back into the Snapshot it was packed from, decoding the
// profiles again; into a Scratch, without allocating.
//
// Layout: the number of records (primary, seasons, then the trigger record
// when watched) and a flags byte, then per record its version (8 bytes) and
// length (4 bytes), then the records' data one after the other.
type Packed struct{ s string }

const (
	packedWatched = 1 << iota
)

// packedEntry is the size of one record's version and length.
const packedEntry = 12

// Pack returns the packed form of s. Unpacking it with the same policy
// gives a snapshot equal to s (its decoded profiles made anew from the
// records).
func (s *Snapshot) Pack() Packed {
	return pack(s.Records, s.Trigger, s.watched)
}

// pack lays out recs (primary and seasons) and, when watched, the trigger
// record as a Packed: one allocation, the data copied.
func pack(recs []Record, trig Record, watched bool) Packed {
	count := len(recs)
	if watched {
		count++
	}
	n := 2 + count*packedEntry
	for _, r := range recs {
		n += len(r.Data)
	}
	n += len(trig.Data)
	b := make([]byte, 2, n)
	b[0] = byte(count)
	if watched {
		b[1] |= packedWatched
	}
	put := func(r Record) {
		b = binary.LittleEndian.AppendUint64(b, r.Version)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Data)))
	}
	for _, r := range recs {
		put(r)
	}
	if watched {
		put(trig)
	}
	for _, r := range recs {
		b = append(b, r.Data...)
	}
	if watched {
		b = append(b, trig.Data...)
	}
	return Packed{s: unsafe.String(unsafe.SliceData(b), len(b))}
}

// Same reports whether p and q are the same packing (not merely equal
// bytes): the one string a single Pack made.
func (p Packed) Same(q Packed) bool {
	return len(p.s) == len(q.s) && unsafe.StringData(p.s) == unsafe.StringData(q.s)
}

// fits reports whether p holds the records pol reads: one per season and
// the trigger record exactly when pol has a Watcher.
func (p Packed) fits(pol *Policy) bool {
	recs := 1 + len(pol.Seasons)
	watched := pol.Watcher != nil
	if watched {
		recs++
	}
	return len(p.s) >= 2+recs*packedEntry && int(p.s[0]) == recs && (p.s[1]&packedWatched != 0) == watched
}

// forward returns the profile a merged profile's primary record forwards
// to, as decodeSnapshot reads it.
func (p Packed) forward() (string, bool) {
	var primary [1]Record
	p.records(primary[:], false)
	target, _, ok := decodeForward(primary[0].Data)
	return target, ok && primary[0].Version != 0
}

// records fills recs (primary and seasons) and returns the trigger record.
// Data aliases p's string: it must never be written to, and is capped so
// that an append copies.
func (p Packed) records(recs []Record, watched bool) (trig Record) {
	n := int(p.s[0])
	off := 2 + n*packedEntry
	for i := range n {
		e := 2 + i*packedEntry
		v := binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(p.s[e:]), 8))
		l := int(binary.LittleEndian.Uint32(unsafe.Slice(unsafe.StringData(p.s[e+8:]), 4)))
		var data []byte
		if l > 0 {
			data = unsafe.Slice(unsafe.StringData(p.s[off:]), l)
			data = data[:l:l]
		}
		off += l
		r := Record{Data: data, Version: v}
		if i < len(recs) {
			recs[i] = r
		} else if watched {
			trig = r
		}
	}
	return trig
}

// Scratch is memory to unpack snapshots into without allocating: one per
// goroutine (a request), reused from one Unpack to the next. A snapshot
// unpacked into it is valid until the next Unpack into the same Scratch.
type Scratch struct {
	snap     Snapshot
	recs     []Record
	seasonal []*Profile
	seasons  []string
	profs    []Profile
	reuse    []reuse
}

// Unpack returns the snapshot of pid packed in p for pol, decoding its
// profiles into sc (or into new memory when sc is nil), or nil when p was
// packed for other seasons or another watcher than pol's. The snapshot's
// strings alias p.
func (s *Service) Unpack(pid string, p Packed, pol *Policy, sc *Scratch) *Snapshot {
	if !p.fits(pol) {
		return nil
	}
	n := 1 + len(pol.Seasons)
	if sc == nil {
		snap := &Snapshot{Records: make([]Record, n), seasons: seasonIDs(pol), Seasonal: make([]*Profile, n-1)}
		snap.Trigger = p.records(snap.Records, pol.Watcher != nil)
		snap.watched = pol.Watcher != nil
		s.decodeSnapshot(snap, pid, pol, nil, true)
		return snap
	}
	if len(sc.profs) < n {
		sc.profs = make([]Profile, n)
		sc.reuse = make([]reuse, n)
	}
	sc.recs = resize(sc.recs, n, true)
	sc.seasonal = resize(sc.seasonal, n-1, true)
	sc.seasons = sc.seasons[:0]
	for i := range pol.Seasons {
		sc.seasons = append(sc.seasons, pol.Seasons[i].ID)
	}
	sc.snap = Snapshot{Records: sc.recs, seasons: sc.seasons, Seasonal: sc.seasonal, watched: pol.Watcher != nil}
	sc.snap.Trigger = p.records(sc.recs, sc.snap.watched)
	s.decodeSnapshot(&sc.snap, pid, pol, sc, true)
	return &sc.snap
}

// decodeSnapshot decodes snap's profiles from its records: with sc, into
// sc's profiles, reusing their memory; otherwise into new ones. With
// alias, the records' data is immutable (unpacked from a Packed) and the
// profiles' strings are cut from it without a copy.
func (s *Service) decodeSnapshot(snap *Snapshot, pid string, pol *Policy, sc *Scratch, alias bool) {
	primary := snap.Records[0]
	if target, data, ok := decodeForward(primary.Data); ok && primary.Version != 0 {
		snap.forward, snap.frozen = target, data != nil
		primary = Record{Data: data, Version: primary.Version}
	}
	snap.Primary = s.decodeAt(sc, 0, primary, alias)
	if snap.Primary == nil {
		if sc != nil {
			sc.profs[0] = Profile{ID: pid}
			snap.Primary = &sc.profs[0]
		} else {
			snap.Primary = &Profile{ID: pid}
		}
	}
	snap.Primary.ID = pid
	now := s.now()
	for i := range pol.Seasons {
		p := s.decodeAt(sc, i+1, snap.Records[i+1], alias)
		if p != nil && p.Cycle == pol.Seasons[i].Cycle(now) {
			snap.Seasonal[i] = p
		} else {
			snap.Seasonal[i] = nil
		}
	}
}

// decodeAt decodes r as the profile at index i of a snapshot, into sc's
// memory when sc is set (see decodeSnapshot); like decodeRecord, an absent
// or unreadable record is nil.
func (s *Service) decodeAt(sc *Scratch, i int, r Record, alias bool) *Profile {
	if !alias {
		return decodeRecord(r)
	}
	if r.Version == 0 || len(r.Data) == 0 {
		return nil
	}
	data := unsafe.String(unsafe.SliceData(r.Data), len(r.Data))
	if sc == nil {
		p := &Profile{}
		if decodeInto(p, data, nil) != nil {
			return nil
		}
		return p
	}
	p := &sc.profs[i]
	if decodeInto(p, data, &sc.reuse[i]) != nil {
		return nil
	}
	return p
}
