package redisstore

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestReadKeys: the keys a Get reads, cut from one string, are the record
// keys a Put writes.
func TestReadKeys(t *testing.T) {
	s := &Store{prefix: "etl"}
	pid := "0123456789abcdef0123456789abcdef"
	for _, seasons := range [][]string{nil, {"sinterklaas"}, {"sinterklaas", "kerst", "x"}} {
		want := []string{s.primaryKey(pid)}
		for _, se := range seasons {
			want = append(want, s.seasonKey(pid, se))
		}
		assert.Equal(t, want, s.readKeys(pid, seasons))
	}
	s.prefix = "shop-a:etl"
	assert.Equal(t, []string{s.primaryKey("p"), s.seasonKey("p", "kerst")}, s.readKeys("p", []string{"kerst"}))
}
