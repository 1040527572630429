// Package loadtest holds the k6 scenarios (k6/*.js), the fasthttp hello
// baseline (hello/) and the runner (runner/) behind `make loadtest`, which
// measures etalage against the baseline in the same run and prints one table.
package loadtest
