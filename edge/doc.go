// Package edge is the HTTP face of etalage: the public and admin fasthttp
// listeners, routes (one file per endpoint), cookie identity, bot detection,
// the profile cache, degraded mode, rate limiting and metrics. It is the one
// place where errors become HTTP statuses. It imports profile and rules, never
// a storage driver: stores arrive as a profile.Store.
package edge
