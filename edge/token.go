package edge

import (
	"errors"
	"strings"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/golang-jwt/jwt/v5"
)

// Identity tokens prove a browser's identify: the shop backend, which knows
// who logged in, issues a JWT (HS256) with sub "email:<address>" or
// "customer:<id>" and exp, signed with one of the --identity-key keys. The
// keys are shared secrets; the first signs (the demo's stand-in backend and
// tests), all verify, so that a key can rotate.

// tokenLeeway absorbs clock skew between the shop backend and the service.
const tokenLeeway = 30 * time.Second

// Outcomes of checking an identify, the label of the identify metric.
const (
	proofAPIKey     = "api_key"      // an API-key caller: the shop backend itself
	proofToken      = "token"        // a valid token naming the identify's contact
	proofNone       = "none"         // no token: a claim only
	proofNoKey      = "no_key"       // a token, but no --identity-key to check it
	proofExpired    = "expired"      // a well-signed token past its exp
	proofInvalid    = "invalid"      // malformed, wrong algorithm, wrong key, no exp
	proofMismatched = "mismatched"   // a valid token for another contact
	proofMalformed  = "malformed_id" // a valid token with a sub that names no contact
)

// proofOutcomes lists every outcome, for the metric's series.
var proofOutcomes = []string{proofAPIKey, proofToken, proofNone, proofNoKey, proofExpired, proofInvalid, proofMismatched, proofMalformed}

// tokenVerifier checks identity tokens against the configured keys and the
// service clock (so --now applies to exp).
type tokenVerifier struct {
	keys   jwt.VerificationKeySet
	parser *jwt.Parser
}

func newTokenVerifier(keys [][]byte, now func() time.Time) *tokenVerifier {
	v := &tokenVerifier{parser: jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(tokenLeeway),
		jwt.WithTimeFunc(now),
	)}
	for _, k := range keys {
		v.keys.Keys = append(v.keys.Keys, k)
	}
	return v
}

// subject verifies tok and returns its sub claim, or the outcome that says
// why it proves nothing.
func (v *tokenVerifier) subject(tok string) (sub, outcome string) {
	if len(v.keys.Keys) == 0 {
		return "", proofNoKey
	}
	var claims jwt.RegisteredClaims
	_, err := v.parser.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return v.keys, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", proofExpired
	case err != nil:
		return "", proofInvalid
	}
	return claims.Subject, proofToken
}

// prove marks the identify events that are proven: every one from an
// API-key caller, and a browser's when its token is valid and its sub names
// the identify's contact. A token proves one identifier; when the identify
// names another as well, that one is kept as an unproven claim (a field of
// the profile) rather than linked. Tokens that prove nothing leave the
// identify unproven — it then only stores its claim on the caller's own
// profile — and are counted, never logged.
func (s *Server) prove(events []profile.Event, trusted bool) {
	for i := range events {
		ev := &events[i]
		if ev.Type != profile.Identify {
			continue
		}
		outcome := s.proveOne(ev, trusted)
		s.metrics.identify(outcome)
		ev.Token = ""
	}
}

func (s *Server) proveOne(ev *profile.Event, trusted bool) string {
	if trusted {
		ev.Proven = true
		return proofAPIKey
	}
	if ev.Token == "" {
		return proofNone
	}
	sub, outcome := s.tokens.subject(ev.Token)
	if outcome != proofToken {
		return outcome
	}
	kind, val, ok := strings.Cut(sub, ":")
	if !ok {
		return proofMalformed
	}
	switch kind {
	case "email":
		addr, err := profile.NormaliseEmail(val)
		if err != nil {
			return proofMalformed
		}
		if addr != ev.Email {
			return proofMismatched
		}
		if ev.Customer != "" {
			ev.Fields = withClaim(ev.Fields, "customer_id", ev.Customer)
			ev.Customer = ""
		}
	case "customer":
		if val == "" {
			return proofMalformed
		}
		if val != ev.Customer {
			return proofMismatched
		}
		if ev.Email != "" {
			ev.Fields = withClaim(ev.Fields, "email", ev.Email)
			ev.Email = ""
		}
	default:
		return proofMalformed
	}
	ev.Proven = true
	return proofToken
}

// withClaim adds an unproven identifier to an identify's fields.
func withClaim(fields map[string]profile.Value, name, val string) map[string]profile.Value {
	if fields == nil {
		fields = make(map[string]profile.Value, 1)
	}
	fields[name] = profile.Value{Kind: profile.KindString, Str: val}
	return fields
}

// SignIdentity returns an identity token for sub ("email:<address>" or
// "customer:<id>") valid until exp, signed with key: what a shop backend
// does at login (docs/INTEGRATION.md shows it in PHP, Node and Python).
func SignIdentity(key []byte, sub string, exp time.Time) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   sub,
		ExpiresAt: jwt.NewNumericDate(exp),
	})
	return t.SignedString(key)
}
