package embeddedstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/embeddedstore"
	"github.com/etalage/etalage/profile/storetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func open(t *testing.T) profile.Store {
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) profile.Store {
		return listedStore{open(t).(*embeddedstore.Store)}
	})
}

// listedStore is a store whose keys the conformance suite may list
// (storetest.KeyLister).
type listedStore struct{ *embeddedstore.Store }

// ProfileKeys lists pid's records: the embedded store keeps no index
// beside them (a profile's records are found by their common prefix).
func (l listedStore) ProfileKeys(ctx context.Context, pid string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	prefix := pid + "\x00"
	return out, l.Dump(func(e embeddedstore.Entry) error {
		if e.Bucket == "records" && strings.HasPrefix(string(e.Key), prefix) {
			out[e.Bucket+"/"+string(e.Key)] = e.Expires
		}
		return nil
	})
}

func TestSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := embeddedstore.Open(dir)
	require.NoError(t, err)
	pid := profile.NewID()
	require.NoError(t, st.Put(ctx, pid, []profile.Write{{Expect: 0, Version: 4, Data: []byte("kept")}}))
	_, _, err = st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte("doc"), Expect: profile.AnyRevision})
	require.NoError(t, err)
	_, err = embeddedstore.Open(dir)
	require.ErrorContains(t, err, "in use by another process")
	require.NoError(t, st.Close())

	st, err = embeddedstore.Open(dir)
	require.NoError(t, err)
	defer st.Close()
	recs, err := st.Get(ctx, pid, nil)
	require.NoError(t, err)
	assert.Equal(t, "kept", string(recs[0].Data))
	doc, rev, err := st.Definitions(ctx)
	require.NoError(t, err)
	assert.Equal(t, "doc", string(doc))
	assert.Equal(t, int64(1), rev)
}

func TestSweep(t *testing.T) {
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	for range 2500 {
		require.NoError(t, st.Put(ctx, profile.NewID(), []profile.Write{{Expect: 0, Version: 1, Data: []byte("x"), TTL: 1}}))
	}
	keep := profile.NewID()
	require.NoError(t, st.Put(ctx, keep, []profile.Write{{Expect: 0, Version: 1, Data: []byte("x")}}))
	st.Sweep()
	pids, next, err := st.Scan(ctx, "", 5000)
	require.NoError(t, err)
	assert.Equal(t, []string{keep}, pids)
	assert.Empty(t, next)
}
