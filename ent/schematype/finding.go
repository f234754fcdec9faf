// Package schematype holds value types stored as JSON columns.
package schematype

// Finding is one result of the description scanner, stored with the tool
// version it was found in.
type Finding struct {
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	Path     string `json:"path"`
	Excerpt  string `json:"excerpt"`
}
