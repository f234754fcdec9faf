package inventory

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

func hash(b string) string {
	s := sha256.Sum256([]byte(b))
	return hex.EncodeToString(s[:])
}

func TestValidateTool(t *testing.T) {
	good := `{"description":"Echo","name":"echo"}`
	for _, tc := range []struct {
		name string
		tool *agentv1.DiscoveredTool
		want string
	}{
		{"valid", &agentv1.DiscoveredTool{Name: "echo", Definition: []byte(good), Sha256: hash(good)}, ""},
		{"empty name", &agentv1.DiscoveredTool{Definition: []byte(good), Sha256: hash(good)}, "empty"},
		{"long name", &agentv1.DiscoveredTool{Name: strings.Repeat("x", 129), Definition: []byte(good), Sha256: hash(good)}, "longer"},
		{"not JSON", &agentv1.DiscoveredTool{Name: "echo", Definition: []byte("{"), Sha256: hash("{")}, "not valid JSON"},
		{"not canonical", &agentv1.DiscoveredTool{Name: "echo", Definition: []byte(`{"name":"echo","description":"Echo"}`), Sha256: hash(`{"name":"echo","description":"Echo"}`)}, "canonical"},
		{"hash mismatch", &agentv1.DiscoveredTool{Name: "echo", Definition: []byte(good), Sha256: hash("other")}, "does not match"},
		{"too large", &agentv1.DiscoveredTool{Name: "echo", Definition: make([]byte, MaxDefinitionBytes+1)}, "larger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateTool(tc.tool)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
