package trigger

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Signer signs payloads as the Standard Webhooks specification says:
// webhook-signature is "v1," and the base64 HMAC-SHA256, keyed with the
// base64-decoded secret, of "<webhook-id>.<webhook-timestamp>.<body>".
type Signer struct {
	wh *standardwebhooks.Webhook
}

// NewSigner reads a secret "whsec_<base64 of 24 to 64 bytes>".
func NewSigner(secret string) (*Signer, error) {
	raw, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New("webhook key: a Standard Webhooks secret starts with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, errors.New("webhook key: the part after whsec_ is not base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("webhook key: %d bytes; use 24 to 64 random bytes, like whsec_$(head -c 32 /dev/urandom | base64)", len(key))
	}
	wh, err := standardwebhooks.NewWebhookRaw(key)
	if err != nil {
		return nil, fmt.Errorf("webhook key: %w", err)
	}
	return &Signer{wh: wh}, nil
}

// NewSecret returns a new random secret in the whsec_ form.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// Sign returns the webhook-signature header value for one attempt.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	sig, _ := s.wh.Sign(id, ts, body) // cannot fail: the key is raw bytes
	return sig
}

// newMessageID returns a webhook-id: unique per change, kept by retries so
// that receivers can de-duplicate.
func newMessageID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "msg_" + hex.EncodeToString(b)
}
