package edge

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSignerRoundTrip(t *testing.T) {
	s := NewSigner([][]byte{[]byte("0123456789abcdef-first")})
	pid := NewID()
	v := s.Sign(pid)
	assert.Len(t, v, visitorLen)
	got, ok := s.Verify([]byte(v))
	require.True(t, ok)
	assert.Equal(t, pid, got)
}

func TestSignerRejects(t *testing.T) {
	key := []byte("0123456789abcdef-first")
	s := NewSigner([][]byte{key})
	other := NewSigner([][]byte{[]byte("another-key-0123456789")})
	pid := NewID()
	v := s.Sign(pid)
	flip := []byte(v)
	flip[len(flip)-2] ^= 1
	upper := strings.ToUpper(pid) + v[idLen:]
	tests := []struct {
		name, value string
	}{
		{"empty", ""},
		{"truncated", v[:len(v)-1]},
		{"tag flipped", string(flip)},
		{"id changed", NewID() + v[idLen:]},
		{"signed with another key", other.Sign(pid)},
		{"no dot", strings.Replace(v, ".", "x", 1)},
		{"upper-case id", upper},
		{"garbage", strings.Repeat("z", visitorLen)},
		{"extra byte", v + "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ok := s.Verify([]byte(tt.value))
			assert.False(t, ok)
		})
	}
}

func TestSignerRotation(t *testing.T) {
	old := []byte("old-key-0123456789abcdef")
	cur := []byte("new-key-0123456789abcdef")
	before := NewSigner([][]byte{old})
	during := NewSigner([][]byte{cur, old})
	after := NewSigner([][]byte{cur})
	pid := NewID()

	v := before.Sign(pid)
	got, ok := during.Verify([]byte(v))
	require.True(t, ok, "all configured keys verify")
	assert.Equal(t, pid, got)

	renewed := during.Sign(pid)
	assert.NotEqual(t, v, renewed, "the first key signs")
	_, ok = after.Verify([]byte(renewed))
	assert.True(t, ok)
	_, ok = after.Verify([]byte(v))
	assert.False(t, ok, "a dropped key no longer verifies")
}

func FuzzVerify(f *testing.F) {
	s := NewSigner([][]byte{[]byte("0123456789abcdef-fuzz")})
	f.Add(s.Sign(NewID()))
	f.Add("")
	f.Add(strings.Repeat("a", idLen) + ".")
	f.Fuzz(func(t *testing.T, v string) {
		pid, ok := s.Verify([]byte(v))
		if ok {
			// Only values this signer produced verify.
			if s.Sign(pid) != v {
				t.Fatalf("verified a value the signer did not produce: %q", v)
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	s := NewSigner([][]byte{[]byte("0123456789abcdef-bench")})
	v := []byte(s.Sign(NewID()))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.Verify(v); !ok {
			b.Fatal("verify")
		}
	}
}

// The memo of verified values answers for values that verified before and
// for nothing else: not a forged tag on a remembered id, not another id in
// the same slot, not a value of a signer with other keys.
func TestSignerMemo(t *testing.T) {
	s := NewSigner([][]byte{[]byte("0123456789abcdef-memo")})
	pid := NewID()
	v := s.Sign(pid)
	for range 3 {
		got, ok := s.Verify([]byte(v))
		require.True(t, ok)
		assert.Equal(t, pid, got)
	}
	assert.Equal(t, v, s.Sign(pid), "a remembered current value is what Sign returns")
	forged := []byte(v)
	forged[len(forged)-1] = 'A' + (forged[len(forged)-1]-'A'+1)%26
	_, ok := s.Verify(forged)
	assert.False(t, ok, "a forged tag on a remembered id")
	sameSlot := pid[:4] + NewID()[4:]
	_, ok = s.Verify([]byte(sameSlot + v[idLen:]))
	assert.False(t, ok, "another id in the same slot with the remembered tag")
	other := NewSigner([][]byte{[]byte("another-key-0123456789")})
	_, ok = other.Verify([]byte(v))
	assert.False(t, ok)
}

// Verify and Sign from many goroutines at once (run under -race).
func TestSignerConcurrent(t *testing.T) {
	s := NewSigner([][]byte{[]byte("0123456789abcdef-conc")})
	ids := make([]string, 64)
	for i := range ids {
		ids[i] = NewID()
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				pid := ids[(i+g)%len(ids)]
				got, ok := s.Verify([]byte(s.Sign(pid)))
				if !ok || got != pid {
					t.Errorf("%s: %v %s", pid, ok, got)
					return
				}
			}
		}()
	}
	wg.Wait()
}
