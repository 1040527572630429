// Package redisstore keeps profiles in Redis (single node, Sentinel or
// Cluster through go-redis' universal client). All keys of one profile share
// a hash slot ({pid}), so reads are one MGET and writes one Lua script. It
// imports profile and go-redis only.
package redisstore
