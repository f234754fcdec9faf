// Package canonical computes the identity of what an upstream offers: the
// RFC 8785 canonical JSON of the fields a model reads or acts on, and the hex
// SHA-256 of that. A tool is its name, title, description, inputSchema,
// outputSchema and annotations; prompts, resources and resource templates
// have their own field lists.
package canonical

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/gowebpki/jcs"
)

// Pinned fields per kind. Anything else (icons, _meta, a resource's size) may
// change without a review.
var (
	Fields                 = []string{"name", "title", "description", "inputSchema", "outputSchema", "annotations"}
	PromptFields           = []string{"name", "title", "description", "arguments"}
	ResourceFields         = []string{"uri", "name", "title", "description", "mimeType", "annotations"}
	ResourceTemplateFields = []string{"uriTemplate", "name", "title", "description", "mimeType", "annotations"}
)

// Tool returns the canonical definition of a tool given as any JSON-marshalable
// value (e.g. *mcp.Tool) and its hash.
func Tool(t any) (def []byte, sha string, err error) { return of("tool", t, Fields) }

// Prompt returns the canonical definition of a prompt (e.g. *mcp.Prompt) and its hash.
func Prompt(p any) (def []byte, sha string, err error) { return of("prompt", p, PromptFields) }

// Resource returns the canonical definition of a resource (e.g. *mcp.Resource) and its hash.
func Resource(r any) (def []byte, sha string, err error) { return of("resource", r, ResourceFields) }

// ResourceTemplate returns the canonical definition of a resource template and its hash.
func ResourceTemplate(t any) (def []byte, sha string, err error) {
	return of("resource template", t, ResourceTemplateFields)
}

func of(kind string, v any, fields []string) (def []byte, sha string, err error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, "", fmt.Errorf("encoding %s: %w", kind, err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, "", fmt.Errorf("%s definition is not a JSON object: %w", kind, err)
	}
	picked := make(map[string]json.RawMessage, len(fields))
	for _, f := range fields {
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
		return nil, "", fmt.Errorf("canonicalising %s: %w", kind, err)
	}
	return def, Hash(def), nil
}

// Hash is the hex SHA-256 of canonical bytes.
func Hash(def []byte) string {
	sum := sha256.Sum256(def)
	return hex.EncodeToString(sum[:])
}
