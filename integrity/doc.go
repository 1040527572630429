// Package integrity holds no code, only the model-based concurrent test of
// the whole service: random programs of page views, carts, orders, proven
// identifies from several devices, consent flips, erasures and restarts
// driven from many goroutines through the edge handlers of two nodes on the
// embedded store, a single Redis and a Redis Cluster, checked after every
// step against an in-memory model and a scan of every stored key. It
// imports edge, profile and the store adapters (tests only).
package integrity
