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

// TestDemoExperiment: the demo runs one experiment on its hero, for
// visitors from a search engine whom nothing else personalises; without
// its experiments section the demo still compiles and keeps its blocks
// last.
func TestDemoExperiment(t *testing.T) {
	s, err := Compile(Demo())
	require.NoError(t, err)
	require.Len(t, s.Experiments(), 1)
	e := s.Experiment("search-welcome")
	require.NotNil(t, e)
	require.Equal(t, "home-hero", e.Slot)

	bare := DemoWithoutExperiments()
	s, err = Compile(bare)
	require.NoError(t, err)
	require.Empty(t, s.Experiments())
	require.NotNil(t, s.Block("hero-search"))
	s, err = Compile(append(bare, "  - {id: extra, slot: home-hero, html: x}\n"...))
	require.NoError(t, err, "blocks may be appended")
	require.NotNil(t, s.Block("extra"))
}
