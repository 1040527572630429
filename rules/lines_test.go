package rules

import (
	"errors"
	"testing"

	"github.com/etalage/etalage/profile"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func problems(t *testing.T, doc string) []Problem {
	t.Helper()
	_, err := Compile([]byte(doc))
	var ve *ValidationError
	require.True(t, errors.As(err, &ve), "want a validation error, got %v", err)
	return ve.Problems
}

func TestProblemLines(t *testing.T) {
	doc := `segments:
  - id: a
    rule: {interest: x}
  - id: b
    rule:
      any:
        - {interest: y}
        - {field: profile.x, frobnicate: 1}
blocks:
  - id: h
    slot: home-hero
    segment: nope
`
	ps := problems(t, doc)
	lines := map[string]int{}
	for _, p := range ps {
		lines[p.Path] = p.Line
	}
	assert.Equal(t, 8, lines["segments[1].rule.any[1].frobnicate"], "%+v", ps)
	assert.Equal(t, 12, lines["blocks[0].segment"], "%+v", ps)
}

func TestSyntaxErrorLine(t *testing.T) {
	ps := problems(t, "segments:\n  - id: a\n   rule: [\n")
	require.Len(t, ps, 1)
	assert.Positive(t, ps[0].Line, ps[0].Message)
}

func TestImpossibleCounts(t *testing.T) {
	for _, tc := range []struct {
		name, count string
		bad         bool
	}{
		{"gte -1", "{gte: -1}", true},
		{"lt 0", "{lt: 0}", true},
		{"fraction", "{gte: 1.5}", true},
		{"eq -2", "{eq: -2}", true},
		{"gte 0", "{gte: 0}", false},
		{"gte 3", "{gte: 3}", false},
		{"lt 1", "{lt: 1}", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := "segments:\n  - id: s\n    rule: {event: page_view, count: " + tc.count + "}\n"
			_, err := Compile([]byte(doc))
			if !tc.bad {
				require.NoError(t, err)
				return
			}
			ps := problems(t, doc)
			assert.Contains(t, ps[0].Path, "segments[0].rule.count.")
			assert.Equal(t, 3, ps[0].Line)
		})
	}
}

func TestWarningsForUnsetFields(t *testing.T) {
	doc := `fields: [{name: shoe_size, type: number}]
segments:
  - id: a
    rule: {field: profile.shoe_sise, eq: 45}
  - id: b
    rule: {field: profile.shoe_size, eq: 45}
  - id: c
    rule: {field: profile.first_name, exists: true}
blocks:
  - {id: x, slot: s, html: "hi {{ .profile.nickname }}"}
`
	set, err := Compile([]byte(doc))
	require.NoError(t, err, "warnings do not fail a document")
	ws := set.Warnings()
	require.Len(t, ws, 2, "%+v", ws)
	assert.Equal(t, "segments[0].rule.field", ws[0].Path)
	assert.Equal(t, 4, ws[0].Line)
	assert.Contains(t, ws[0].Message, "did you mean profile.shoe_size?")
	assert.Equal(t, "blocks[0].html", ws[1].Path)
	assert.Contains(t, ws[1].Message, "declare it")
	demo, err := Compile(Demo())
	require.NoError(t, err)
	assert.Empty(t, demo.Warnings(), "the demo document is clean")
}

func TestWords(t *testing.T) {
	set, err := Compile([]byte(`segments:
  - id: fans
    rule: {interest: sneakers}
blocks:
  - {id: welcome, slot: hero, html: "<h2>Welkom</h2>"}
  - {id: fan-hero, slot: hero, segment: fans, priority: 10, html: "<h2>Nieuwe sneakers</h2><p>voor {{ .profile.first_name }}</p>"}
  - {id: other, slot: side, segment: fans, html: x}
`))
	require.NoError(t, err)
	p := &profile.Profile{ID: "p", Interests: map[string]profile.Interest{"sneakers": {On: true}}}
	in := &Input{Profile: p, Now: testNow}
	words := set.Words(set.Explain(in, []string{"hero", "side", "none"}))
	require.Len(t, words, 3)
	assert.Contains(t, words[0], "In hero you see “Nieuwe sneakers” (fan-hero) because you are in segment fans")
	assert.Contains(t, words[0], "“Welkom” (welcome) lost on priority (0 against 10)")
	assert.Contains(t, words[1], "“x” (other) because")
	assert.Contains(t, words[2], "Nothing from etalage in none")
}

// TestValidationErrorMessage: the one-line message never shows an empty
// path segment ("invalid definitions: : not valid YAML").
func TestValidationErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"syntax error, no path", "segments:\n  - id: a\n   rule: [\n", "invalid definitions: not valid YAML or JSON: "},
		{"too large, no path", "# " + string(make([]byte, MaxDocument)), "invalid definitions: the document is larger than "},
		{"with a path", "segments:\n  - {id: a, rule: {interest: x, frobnicate: 1}}\n", "invalid definitions: segments[0].rule"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile([]byte(tc.doc))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), ": :")
			for _, p := range problems(t, tc.doc) {
				assert.NotRegexp(t, `^: `, p.String())
			}
		})
	}
}

func TestProblemString(t *testing.T) {
	assert.Equal(t, "bad", Problem{Message: "bad"}.String())
	assert.Equal(t, "blocks[0].slot: bad", Problem{Path: "blocks[0].slot", Message: "bad"}.String())
}
