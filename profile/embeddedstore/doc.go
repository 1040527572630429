// Package embeddedstore keeps profiles in a bbolt file on local disk: the
// default store of `etalage serve`, durable across restarts, for one node.
// It imports profile and go.etcd.io/bbolt only.
package embeddedstore
