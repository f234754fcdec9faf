package schematype

// ToolRename exposes one upstream tool under another name on a virtual server.
type ToolRename struct {
	Upstream string `json:"upstream"`
	Tool     string `json:"tool"`
	Name     string `json:"name"`
}
