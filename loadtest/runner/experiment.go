package main

import (
	"os"
	"path/filepath"

	"github.com/etalage/etalage/rules"
)

// experimentDoc is the demo with one experiment on the hero that every
// visitor enters (no segment, all traffic): with -experiment the warm
// decide measures a visitor already exposed, who reads the stored variant
// (the first decide of each visitor records the exposure).
var experimentDoc = string(rules.DemoHeroTest())

// withExperiment writes experimentDoc into work and adds it to a serve
// command's arguments.
func withExperiment(work string, args []string) ([]string, error) {
	path := filepath.Join(work, "experiment.yaml")
	if err := os.WriteFile(path, []byte(experimentDoc), 0o600); err != nil {
		return nil, err
	}
	return append(args, "--definitions", path), nil
}
