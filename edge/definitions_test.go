package edge

import (
	"fmt"
	"testing"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/embeddedstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sharedStore is a store that several servers in one test use, like nodes
// of one deployment or one node across restarts; the test closes it.
type sharedStore struct{ profile.Store }

func (sharedStore) Close() error { return nil }

func newSharedStore(t *testing.T) profile.Store {
	t.Helper()
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return sharedStore{st}
}

func heroDoc(name string) string {
	return fmt.Sprintf("blocks:\n  - {id: hero-%s, slot: home-hero, html: \"<h1>%s</h1>\"}\n", name, name)
}

func running(t *testing.T, h *harness) (string, float64) {
	t.Helper()
	r := h.adminCall(t, "GET", "/admin/v1/definitions", "")
	require.Equal(t, 200, r.status, string(r.body))
	m := r.json(t)
	return m["document"].(string), m["revision"].(float64)
}

// TestDefinitionsFileAtRestart: a node restarted with a --definitions file
// that an earlier start already applied runs the stored revision instead of
// storing the file again, which used to revert every node to it.
func TestDefinitionsFileAtRestart(t *testing.T) {
	st := newSharedStore(t)
	start := func(doc string) *harness {
		return newHarnessWithStore(t, st, func(c *Config) {
			if doc != "" {
				c.Definitions = []byte(doc)
			}
		})
	}
	v1, v2, v3 := heroDoc("one"), heroDoc("two"), heroDoc("three")

	doc, rev := running(t, start(v1))
	assert.Equal(t, v1, doc, "an empty store takes the file")
	assert.Equal(t, 1.0, rev)

	doc, rev = running(t, start(v2))
	assert.Equal(t, v2, doc, "a file no start applied before is applied")
	assert.Equal(t, 2.0, rev)

	doc, rev = running(t, start(v1))
	assert.Equal(t, v2, doc, "a node restarted with the older file must not revert the others")
	assert.Equal(t, 2.0, rev)

	h := start("")
	r := h.adminCall(t, "PUT", "/admin/v1/definitions", v3)
	require.Equal(t, 200, r.status, string(r.body))
	doc, rev = running(t, start(v2))
	assert.Equal(t, v3, doc, "what the admin API applied since survives a restart with the last file")
	assert.Equal(t, 3.0, rev)

	r = h.adminCall(t, "GET", "/admin/v1/definitions/revisions", "")
	require.Equal(t, 200, r.status, string(r.body))
	revs := r.json(t)["revisions"].([]any)
	assert.Len(t, revs, 3, "restarts stored no revision")
}

func TestDefinitionsUnchangedIsNoRevision(t *testing.T) {
	h := newHarness(t, nil)
	doc := heroDoc("same")
	r := h.adminCall(t, "PUT", "/admin/v1/definitions", doc)
	require.Equal(t, 200, r.status, string(r.body))
	first := r.json(t)["revision"]
	r = h.adminCall(t, "PUT", "/admin/v1/definitions", doc)
	require.Equal(t, 200, r.status, string(r.body))
	assert.Equal(t, first, r.json(t)["revision"], "the same document again is no new revision")
	assert.Equal(t, false, r.json(t)["changed"])
}

func TestDefinitionsIfMatch(t *testing.T) {
	h := newHarness(t, nil)
	put := func(doc, match string) *response {
		hdr := map[string]string{"Authorization": "Bearer " + testAdminToken}
		if match != "" {
			hdr["If-Match"] = match
		}
		return call(t, h.admin, "PUT", "/admin/v1/definitions?note=test", doc, hdr)
	}
	r := put(heroDoc("a"), "")
	require.Equal(t, 200, r.status, string(r.body))
	g := h.adminCall(t, "GET", "/admin/v1/definitions", "")
	tag := `"1"`
	assert.Equal(t, tag, g.headers["Etag"], "GET carries the revision as ETag")

	r = put(heroDoc("b"), tag)
	require.Equal(t, 200, r.status, "If-Match with the running revision applies: %s", r.body)
	r = put(heroDoc("c"), tag)
	assert.Equal(t, 409, r.status, "someone applied in between: %s", r.body)
	assert.Equal(t, ECodeConflict, errorCode(t, r))
	doc, _ := running(t, h)
	assert.Equal(t, heroDoc("b"), doc, "a refused apply changes nothing")
	r = put(heroDoc("c"), "banana")
	assert.Equal(t, 400, r.status)
	r = put(heroDoc("c"), "*")
	assert.Equal(t, 200, r.status, "* is any revision")
}

func TestDefinitionsRevisionsAndRollback(t *testing.T) {
	h := newHarness(t, nil)
	for _, n := range []string{"a", "b", "c"} {
		r := h.adminCall(t, "PUT", "/admin/v1/definitions?note=make+"+n, heroDoc(n))
		require.Equal(t, 200, r.status, string(r.body))
	}
	r := h.adminCall(t, "GET", "/admin/v1/definitions/revisions?limit=2", "")
	require.Equal(t, 200, r.status, string(r.body))
	m := r.json(t)
	revs := m["revisions"].([]any)
	require.Len(t, revs, 2)
	newest := revs[0].(map[string]any)
	assert.Equal(t, 3.0, newest["revision"])
	assert.Equal(t, "make c", newest["note"])
	assert.NotEmpty(t, newest["time"])
	assert.Equal(t, 2.0, m["before"], "the cursor to older revisions")

	r = h.adminCall(t, "GET", "/admin/v1/definitions/revisions/1", "")
	require.Equal(t, 200, r.status, string(r.body))
	assert.Equal(t, heroDoc("a"), r.json(t)["document"])
	r = h.adminCall(t, "GET", "/admin/v1/definitions/revisions/99", "")
	assert.Equal(t, 404, r.status)

	r = call(t, h.admin, "POST", "/admin/v1/definitions/revisions/1/rollback", "", map[string]string{"Authorization": "Bearer " + testAdminToken, "If-Match": `"2"`})
	assert.Equal(t, 409, r.status, "a rollback honours If-Match too")
	r = call(t, h.admin, "POST", "/admin/v1/definitions/revisions/1/rollback", "", map[string]string{"Authorization": "Bearer " + testAdminToken, "If-Match": `"3"`})
	require.Equal(t, 200, r.status, string(r.body))
	assert.Equal(t, 4.0, r.json(t)["revision"], "a rollback is a new revision")
	doc, rev := running(t, h)
	assert.Equal(t, heroDoc("a"), doc)
	assert.Equal(t, 4.0, rev)
	d := h.decide(t, "", `{"slots":["home-hero"]}`)
	assert.Equal(t, "hero-a", blockID(t, d, "home-hero"))
	r = h.adminCall(t, "GET", "/admin/v1/definitions/revisions/4", "")
	assert.Equal(t, "rollback to revision 1", r.json(t)["note"])
}

// TestDefinitionsErrorWording: a refused PUT says what is wrong in words
// that fit the case: a 409 with If-Match before anything was applied does
// not speak of "revision 0 applied since revision 3", and a 422 for a
// document with no path to blame prints no empty path segment.
func TestDefinitionsErrorWording(t *testing.T) {
	for _, tc := range []struct {
		name        string
		first       string // a document applied before, "" for none
		doc, match  string
		status      int
		want, never string
	}{
		{name: "If-Match with nothing applied", doc: heroDoc("a"), match: `"3"`, status: 409,
			want: "no definitions applied yet, so there is no revision 3: If-Match must be 0 or omitted", never: "revision 0"},
		{name: "If-Match ahead of the current revision", first: heroDoc("a"), doc: heroDoc("b"), match: `"5"`, status: 409,
			want: "there is no revision 5 yet: the current revision is 1", never: "applied since"},
		{name: "If-Match behind the current revision", first: heroDoc("a"), doc: heroDoc("b"), match: `"0"`, status: 409,
			want: "revision 1 was applied since revision 0"},
		{name: "YAML syntax error", doc: "segments:\n  - id: a\n   rule: [\n", status: 422,
			want: "invalid definitions: not valid YAML or JSON: ", never: ": :"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			if tc.first != "" {
				require.Equal(t, 200, h.adminCall(t, "PUT", "/admin/v1/definitions", tc.first).status)
			}
			hdr := map[string]string{"Authorization": "Bearer " + testAdminToken}
			if tc.match != "" {
				hdr["If-Match"] = tc.match
			}
			r := call(t, h.admin, "PUT", "/admin/v1/definitions", tc.doc, hdr)
			require.Equal(t, tc.status, r.status, string(r.body))
			msg := r.json(t)["error"].(map[string]any)["message"].(string)
			assert.Contains(t, msg, tc.want)
			if tc.never != "" {
				assert.NotContains(t, msg, tc.never)
			}
		})
	}
}
