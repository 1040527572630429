// Package rules owns the definitions document: it parses YAML or JSON,
// validates the whole document (every error with its path), compiles it once
// into an immutable Set, evaluates segments on a profile and a request
// context, chooses blocks for slots and explains its choices. It imports
// profile for the profile model, never edge, HTTP or storage packages.
package rules
