package rules

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDemoCompiles(t *testing.T) {
	s, err := Compile(Demo())
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(s.segments), 20)
	require.True(t, s.HasSegment("sneaker-fans"))
	require.True(t, s.HasSegment("sint-gift-buyers"))
}
