package edge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"sync"
)

// cookieMaxAge is about 400 days, the longest lifetime browsers accept.
const cookieMaxAge = 400 * 24 * 60 * 60

// sigLen is the length of the truncated HMAC-SHA256 tag: 128 bits.
const sigLen = 16

// idLen is the length of a profile id: 128 random bits as hex.
const idLen = 32

// visitorLen is the length of a signed visitor value: id, '.', tag.
var visitorLen = idLen + 1 + base64.RawURLEncoding.EncodedLen(sigLen)

var strictB64 = base64.RawURLEncoding.Strict()

// Signer signs and verifies visitor values: a 128-bit profile id and an
// HMAC-SHA256 tag over it. The first key signs; every key verifies, so keys
// can rotate: add the new key first, keep the old one until its cookies have
// been renewed, then drop it.
type Signer struct {
	keys  [][]byte
	pools []sync.Pool // one pool of hmac states per key
}

// NewSigner returns a Signer for keys (at least one, the first signs).
func NewSigner(keys [][]byte) *Signer {
	s := &Signer{keys: keys, pools: make([]sync.Pool, len(keys))}
	for i := range keys {
		k := keys[i]
		s.pools[i].New = func() any { return hmac.New(sha256.New, k) }
	}
	return s
}

func (s *Signer) tag(i int, id []byte, dst []byte) []byte {
	h := s.pools[i].Get().(hash.Hash)
	h.Reset()
	h.Write([]byte("etl1:"))
	h.Write(id)
	var sum [sha256.Size]byte
	out := h.Sum(sum[:0])
	s.pools[i].Put(h)
	return append(dst, out[:sigLen]...)
}

// Sign returns the visitor value for profile id pid.
func (s *Signer) Sign(pid string) string {
	var tag [sigLen]byte
	s.tag(0, []byte(pid), tag[:0])
	b := make([]byte, 0, visitorLen)
	b = append(b, pid...)
	b = append(b, '.')
	b = base64.RawURLEncoding.AppendEncode(b, tag[:])
	return string(b)
}

// Verify returns the profile id carried by a visitor value and whether its
// signature holds under any key. Malformed values are simply not valid.
func (s *Signer) Verify(v []byte) (string, bool) {
	if len(v) != visitorLen || v[idLen] != '.' {
		return "", false
	}
	id := v[:idLen]
	if !isLowerHex(id) {
		return "", false
	}
	var got [sigLen + 2]byte
	// Strict: a tag whose last character differs only in the unused low
	// bits would decode to the same bytes; only the canonical one verifies.
	n, err := strictB64.Decode(got[:], v[idLen+1:])
	if err != nil || n != sigLen {
		return "", false
	}
	var want [sigLen]byte
	for i := range s.keys {
		s.tag(i, id, want[:0])
		if hmac.Equal(want[:], got[:sigLen]) {
			return string(id), true
		}
	}
	return "", false
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// NewID returns a fresh random 128-bit profile id as 32 hex characters.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error()) // never happens on supported platforms
	}
	return hex.EncodeToString(b[:])
}
