// Package stats computes what an experiment report shows: conversion rates,
// the relative uplift with its 95% interval, the chance to beat the control
// under a Beta-binomial model, and the sample-ratio-mismatch test. It is pure
// arithmetic on counts and imports only the standard library.
package stats
