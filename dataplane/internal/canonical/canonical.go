// Package canonical computes the identity of a tool definition: the RFC 8785
// canonical JSON of its name, title, description, inputSchema, outputSchema
// and annotations, and the hex SHA-256 of that.
package canonical

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/gowebpki/jcs"
)

// Fields are the parts of a tool definition that are pinned. Anything else
// (icons, _meta) may change without a review.
var Fields = []string{"name", "title", "description", "inputSchema", "outputSchema", "annotations"}

// Tool returns the canonical definition of a tool given as any JSON-marshalable
// value (e.g. *mcp.Tool) and its hash.
func Tool(t any) (def []byte, sha string, err error) {
	raw, err := json.Marshal(t)
	if err != nil {
		return nil, "", fmt.Errorf("encoding tool: %w", err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, "", fmt.Errorf("tool definition is not a JSON object: %w", err)
	}
	picked := make(map[string]json.RawMessage, len(Fields))
	for _, f := range Fields {
		if v, ok := all[f]; ok && string(v) != "null" {
			picked[f] = v
		}
	}
	raw, err = json.Marshal(picked)
	if err != nil {
		return nil, "", err
	}
	def, err = jcs.Transform(raw)
	if err != nil {
		return nil, "", fmt.Errorf("canonicalising tool: %w", err)
	}
	return def, Hash(def), nil
}

// Hash is the hex SHA-256 of canonical bytes.
func Hash(def []byte) string {
	sum := sha256.Sum256(def)
	return hex.EncodeToString(sum[:])
}
