// Package loadtest holds the load tests behind `make loadtest`: the wrk
// script (wrk/etalage.lua) for throughput and latency measured the way the
// anchors were, the k6 scenarios (k6/*.js) with their thresholds, the
// fasthttp hello baselines (hello/, plain and with two pipelined Redis
// reads) and the runner (runner/) that measures etalage against the
// baseline in the same run and prints one table.
package loadtest
