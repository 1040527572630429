package edge

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendJSONString(t *testing.T) {
	tests := []string{
		"", "plain", `quote " backslash \`, "new\nline\ttab\r", "<script>&</script>",
		"ünïcødé ✓ 🎁", "\x00\x01\x1f", "bad \xff utf8", "line\u2028sep\u2029",
	}
	for _, in := range tests {
		t.Run(in, func(t *testing.T) {
			out := appendJSONString(nil, in)
			var back string
			require.NoError(t, json.Unmarshal(out, &back), string(out))
			// encoding/json is the reference: same string after a round trip.
			refB, err := json.Marshal(in)
			require.NoError(t, err)
			var ref string
			require.NoError(t, json.Unmarshal(refB, &ref))
			assert.Equal(t, ref, back)
			assert.NotContains(t, string(out), "<")
			assert.NotContains(t, string(out), ">")
		})
	}
}
