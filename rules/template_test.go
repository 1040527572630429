package rules

import (
	"encoding/json"
	"errors"
	htmltemplate "html/template"
	"strings"
	"testing"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// escapingTemplates put a value in every place a template may: text,
// RCDATA, quoted attributes, and URL attributes at their start, in their
// path and in their query or fragment. X stands for the value.
var escapingTemplates = []string{
	`<p>Hoi X!</p>`,
	`<h2 title="X">Hoi</h2>`,
	`<h2 title='X'>Hoi</h2>`,
	`<input value="X" placeholder='X'>`,
	`<a href="X">link</a>`,
	`<a href=" X">link</a>`,
	`<a HREF='X'>link</a>`,
	`<a href="/p/X">link</a>`,
	`<a href="/zoek?q=X&amp;n=1">link</a>`,
	`<a href="/p#X">link</a>`,
	`<img src="X" alt="X">`,
	`<img data-src="X" data-name="X">`,
	`<div data-url="X">x</div>`,
	`<svg><a xlink:href="X">x</a></svg>`,
	`<form action="X"><button formaction="/b/X">b</button></form>`,
	`<textarea>X</textarea><title>X</title>`,
	`<p class="a">X</p><a href="X?x=X">X</a>`,
	`<br/><p>X</p>`,
}

// hostileValues are what a visitor could put in their own profile fields.
var hostileValues = []string{
	"Eve", "", "<script>alert(1)</script>", `"><img src=x onerror=alert(1)>`, `' onmouseover='alert(1)`,
	"javascript:alert(1)", " javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)",
	"data:text/html;base64,PHNjcmlwdD4=", "vbscript:msgbox(1)", "http://ok.example/a?b=c&d=e",
	"HTTPS://ok.example/é", "mailto:a@b.example", "//evil.example/x", "/path:colon", "?a:b", "#frag",
	"a b+c%20d%zz%", "&amp;&lt;", "\x00nul", "\xff\xfe broken utf-8", "ü€😀", "}}{{", "--><!--",
	"</textarea><script>alert(1)</script>", "100%", "a\"b'c`d",
}

// etalageRender renders tmpl (X replaced by an action) with first_name v.
func etalageRender(t testing.TB, tmpl, v string) string {
	t.Helper()
	doc, err := json.Marshal(map[string]any{"blocks": []any{map[string]any{
		"id": "b", "slot": "s", "html": strings.ReplaceAll(tmpl, "X", "{{ .profile.first_name }}"),
	}}})
	require.NoError(t, err)
	set := mustCompile(t, string(doc))
	p := &profile.Profile{Fields: map[string]profile.Field{"first_name": {Value: profile.Value{Kind: profile.KindString, Str: v}}}}
	var d Decision
	set.Decide(&Input{Profile: p, Now: testNow}, []string{"s"}, &d)
	require.Len(t, d.Choices, 1)
	return string(d.Choices[0].HTML)
}

// referenceRender renders tmpl with html/template's contextual escaping.
func referenceRender(t testing.TB, tmpl, v string) string {
	t.Helper()
	ht, err := htmltemplate.New("t").Parse(strings.ReplaceAll(tmpl, "X", "{{.}}"))
	require.NoError(t, err)
	var b strings.Builder
	require.NoError(t, ht.Execute(&b, v))
	return b.String()
}

// TestTemplateEscapingMatchesHTMLTemplate is the differential test: for
// every template and hostile value, etalage writes what html/template
// writes, byte for byte.
func TestTemplateEscapingMatchesHTMLTemplate(t *testing.T) {
	for _, tmpl := range escapingTemplates {
		for _, v := range hostileValues {
			got, want := etalageRender(t, tmpl, v), referenceRender(t, tmpl, v)
			assert.Equal(t, want, got, "template %q, value %q", tmpl, v)
		}
	}
}

// TestTemplateRefusesActiveURLs: no profile value becomes a javascript:
// (or data:, vbscript:, …) link, and none adds a tag or an attribute.
func TestTemplateRefusesActiveURLs(t *testing.T) {
	for _, v := range []string{"javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,x", "vbscript:x", "jAvAsCrIpT&colon;x"} {
		got := etalageRender(t, `<a href="X">x</a>`, v)
		assert.NotContains(t, strings.ToLower(got), "script:", v)
		assert.NotContains(t, got, "data:", v)
	}
	got := etalageRender(t, `<p title="X">X</p>`, `"><script>alert(1)</script><p x="`)
	assert.Equal(t, 2, strings.Count(got, "<"), "no tag added: %s", got)
	assert.NotContains(t, got[3:], `"><`)
}

// TestTemplateRejectsUnsafePlaces: a value where no escaping is safe is a
// validation error naming the block's html, like html/template refuses or
// switches to JavaScript/CSS escaping there.
func TestTemplateRejectsUnsafePlaces(t *testing.T) {
	for _, tc := range []struct{ name, html, want string }{
		{"script", `<script>var n = "X";</script>`, "inside <script>"},
		{"script upper case", `<SCRIPT type="text/javascript">X</SCRIPT>`, "inside <script>"},
		{"style element", `<style>p { color: X }</style>`, "inside <style>"},
		{"event handler", `<a onclick="go('X')">x</a>`, "event-handler attribute onclick"},
		{"event handler, upper case", `<img ONERROR='X'>`, "event-handler attribute onerror"},
		{"style attribute", `<p style="color: X">x</p>`, "style attribute"},
		{"srcset", `<img srcset="X 2x">`, "srcset"},
		{"unquoted attribute", `<p title=X>x</p>`, "unquoted attribute value"},
		{"unquoted, after text", `<a href=/p/X>x</a>`, "unquoted attribute value"},
		{"tag name", `<X>hoi</X>`, "tag name"},
		{"end tag name", `<b>hoi</X>`, "tag name"},
		{"attribute name", `<p X="1">x</p>`, "attribute name"},
		{"bare in a tag", `<p X>x</p>`, "attribute name"},
		{"comment", `<!-- X -->`, "HTML comment"},
		{"unclosed attribute", `<p title="X`, "ends inside an attribute value"},
		{"unclosed tag", `<p>X</p><img alt="x"`, "ends inside a tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, _ := json.Marshal(map[string]any{"blocks": []any{
				map[string]any{"id": "ok", "slot": "s", "html": "<p>fine</p>"},
				map[string]any{"id": "bad", "slot": "s", "html": strings.ReplaceAll(tc.html, "X", "{{ .profile.first_name }}")},
			}})
			_, err := Compile(doc)
			var ve *ValidationError
			require.True(t, errors.As(err, &ve), "%v", err)
			require.NotEmpty(t, ve.Problems)
			assert.Equal(t, "blocks[1].html", ve.Problems[0].Path)
			assert.Contains(t, ve.Problems[0].Message, tc.want)
		})
	}
	// The shop's own markup without values stays the shop's: scripts and
	// styles in static blocks are fine.
	mustCompile(t, `blocks: [{id: s, slot: s, html: "<script>track()</script><p style='color:red' onclick='x()'>hi</p>"}]`)
}

// FuzzTemplateEscaping compares etalage's escaping with html/template's
// for any value in every place of the templates.
func FuzzTemplateEscaping(f *testing.F) {
	for i, v := range hostileValues {
		f.Add(v, uint8(i))
	}
	f.Fuzz(func(t *testing.T, v string, which uint8) {
		tmpl := escapingTemplates[int(which)%len(escapingTemplates)]
		got, want := etalageRender(t, tmpl, v), referenceRender(t, tmpl, v)
		if got != want {
			t.Fatalf("template %q, value %q:\netalage       %q\nhtml/template %q", tmpl, v, got, want)
		}
	})
}
