package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// goldenCase is one file under testdata/golden: a document, a profile
// described by what happened to it, a request context, and the expected
// segments, blocks and explanation.
type goldenCase struct {
	Doc     string                   `yaml:"doc"`
	Now     string                   `yaml:"now"`
	Profile goldenProfile            `yaml:"profile"`
	Seasons map[string]goldenProfile `yaml:"seasonal"`
	Context Context                  `yaml:"context"`
	Slots   []string                 `yaml:"slots"`
	Want    struct {
		Segments []string          `yaml:"segments"`
		Blocks   map[string]string `yaml:"blocks"`
		HTML     map[string]string `yaml:"html"`
		Explain  map[string]string `yaml:"explain"` // segment id → reason substring
	} `yaml:"want"`
}

type goldenProfile struct {
	Fields    map[string]any `yaml:"fields"`
	Interests []string       `yaml:"interests"`
	Score     float64        `yaml:"score"`
	Known     bool           `yaml:"known"`
	Events    []struct {
		Type     string  `yaml:"type"`
		URL      string  `yaml:"url"`
		Category string  `yaml:"category"`
		SKU      string  `yaml:"sku"`
		Campaign string  `yaml:"campaign"`
		DaysAgo  []int   `yaml:"days_ago"`
		Price    float64 `yaml:"price"`
	} `yaml:"events"`
	Cart struct {
		Items      []profile.CartItem `yaml:"items"`
		MinutesAgo int                `yaml:"minutes_ago"`
	} `yaml:"cart"`
}

func (g *goldenProfile) build(now time.Time) *profile.Profile {
	p := &profile.Profile{Known: g.Known, Score: g.Score, Fields: map[string]profile.Field{}, Interests: map[string]profile.Interest{}, FirstSeen: now.Add(-30 * 24 * time.Hour).Unix(), LastSeen: now.Unix(), Visits: 1}
	for k, v := range g.Fields {
		switch x := v.(type) {
		case string:
			if t, ok := profile.ParseDate(x); ok && len(x) == 10 {
				p.Fields[k] = profile.Field{Value: profile.Value{Kind: profile.KindDate, Time: t.Unix()}}
			} else {
				p.Fields[k] = str(x)
			}
		case int:
			p.Fields[k] = num(float64(x))
		case float64:
			p.Fields[k] = num(x)
		case bool:
			p.Fields[k] = profile.Field{Value: profile.Value{Kind: profile.KindBool, Num: boolNum(x)}}
		}
	}
	for _, in := range g.Interests {
		p.Interests[in] = profile.Interest{On: true}
	}
	// Events are applied through the profile package's own JSON path would
	// need a store; counters are built directly, the same shape it keeps.
	for _, e := range g.Events {
		t := profile.ParseEventType(e.Type)
		keys := []profile.Key{{URL: e.URL, Category: e.Category, SKU: e.SKU, Campaign: e.Campaign}}
		if t == profile.Purchase {
			keys = []profile.Key{{}, {SKU: e.SKU, Category: e.Category}}
		}
		for _, k := range keys {
			c := profile.Counter{Type: t, Key: k}
			for i := len(e.DaysAgo) - 1; i >= 0; i-- {
				ts := now.Add(-time.Duration(e.DaysAgo[i]) * 24 * time.Hour).Unix()
				c.Total++
				c.Last = max(c.Last, ts)
				d := profile.Day(ts)
				if n := len(c.Days); n > 0 && c.Days[n-1].Day == d {
					c.Days[n-1].N++
				} else {
					c.Days = append(c.Days, profile.DayCount{Day: d, N: 1})
				}
			}
			p.Behaviour = append(p.Behaviour, c)
		}
	}
	if len(g.Cart.Items) > 0 {
		p.Cart = profile.Cart{Items: g.Cart.Items, UpdatedAt: now.Add(-time.Duration(g.Cart.MinutesAgo) * time.Minute).Unix()}
	}
	return p
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			b, err := os.ReadFile(file)
			require.NoError(t, err)
			var gc goldenCase
			require.NoError(t, yaml.Unmarshal(b, &gc))
			s := mustCompile(t, gc.Doc)
			now, err := time.Parse(time.RFC3339, gc.Now)
			require.NoError(t, err)
			in := &Input{Profile: gc.Profile.build(now), Context: gc.Context, Now: now, Seasonal: make([]*profile.Profile, len(s.Seasons()))}
			for i, se := range s.Seasons() {
				if gp, ok := gc.Seasons[se.ID]; ok {
					in.Seasonal[i] = gp.build(now)
				}
			}
			var d Decision
			s.Decide(in, gc.Slots, &d)
			assert.Equal(t, append([]string{}, gc.Want.Segments...), append([]string{}, d.Segments...), "segments")
			blocks := map[string]string{}
			html := map[string]string{}
			for _, c := range d.Choices {
				if c.Block != nil {
					blocks[c.Slot] = c.Block.ID
					if c.HTML != nil {
						html[c.Slot] = string(c.HTML)
					}
				} else {
					blocks[c.Slot] = ""
				}
			}
			assert.Equal(t, gc.Want.Blocks, blocks, "blocks")
			for slot, want := range gc.Want.HTML {
				assert.Equal(t, want, html[slot], "html of %s", slot)
			}
			ex := s.Explain(in, gc.Slots)
			for id, want := range gc.Want.Explain {
				found := false
				for _, st := range ex.Segments {
					if st.ID == id {
						found = true
						assert.Contains(t, st.Reason, want, "explain %s", id)
					}
				}
				assert.True(t, found, "explain has %s", id)
			}
		})
	}
}
