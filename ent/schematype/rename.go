package schematype

import (
	"fmt"
	"strings"
)

// ToolRename exposes one upstream tool under another name on a virtual server.
type ToolRename struct {
	Upstream string `json:"upstream"`
	Tool     string `json:"tool"`
	Name     string `json:"name"`
}

// ParseToolRename reads a rename written "upstream/tool=name", as the CLI
// and the console take it; the control plane validates the parts.
func ParseToolRename(s string) (ToolRename, error) {
	from, name, ok := strings.Cut(strings.TrimSpace(s), "=")
	up, tool, ok2 := strings.Cut(strings.TrimSpace(from), "/")
	r := ToolRename{Upstream: strings.TrimSpace(up), Tool: strings.TrimSpace(tool), Name: strings.TrimSpace(name)}
	if !ok || !ok2 || r.Upstream == "" || r.Tool == "" || r.Name == "" {
		return ToolRename{}, fmt.Errorf("rename %q: write upstream/tool=name", s)
	}
	return r, nil
}

// Naming says how a virtual server exposes tool names, for listings.
func Naming(unprefixed bool, renames int) string {
	naming := "upstream__tool"
	if unprefixed {
		naming = "unprefixed"
	}
	if renames > 0 {
		naming += fmt.Sprintf(", %d renamed", renames)
	}
	return naming
}
