// Package profile owns what etalage knows about a visitor: the primary and
// seasonal profiles, the events that change them, identity links and merges,
// consent, bounds and retention, and the Store contract that adapters implement.
// It imports only the standard library and small parsing libraries; never edge,
// rules or a storage driver.
package profile
