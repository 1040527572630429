package rules

import _ "embed"

//go:embed demo.yaml
var demo []byte

// Demo returns the demo definitions: a Dutch shoe and toy shop with a
// Sinterklaas season, used when no document was applied.
func Demo() []byte { return append([]byte(nil), demo...) }
