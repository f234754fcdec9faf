package agentsync

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// TokenPrefix starts every enrollment token.
const TokenPrefix = "pcgw1"

// FormatToken joins an enrollment secret with the SHA-256 of the control
// plane's CA certificate, so a new agent can pin the CA on first contact
// (as kubeadm's discovery token does).
func FormatToken(secret string, caDER []byte) string {
	sum := sha256.Sum256(caDER)
	return TokenPrefix + "." + secret + "." + base64.RawURLEncoding.EncodeToString(sum[:])
}

// tokenSecret extracts the secret from a token; ok is false when malformed.
func tokenSecret(token string) (string, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] != TokenPrefix || len(parts[1]) != 43 || len(token) > 200 {
		return "", false
	}
	return parts[1], true
}
