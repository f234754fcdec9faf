package schematype

import "time"

// CatalogCredential is something a catalog server needs to run: an
// environment variable of a package, or a header of a remote.
type CatalogCredential struct {
	// Kind is "env" or "header".
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Secret      bool   `json:"secret,omitempty"`
	Required    bool   `json:"required,omitempty"`
}

// CatalogDecision is one person's approval or rejection of a catalog entry.
type CatalogDecision struct {
	// ActorKey is the principal ("user:<id>" or "apikey:<id>"), Actor its name.
	ActorKey string    `json:"actor_key"`
	Actor    string    `json:"actor"`
	Decision string    `json:"decision"` // approve or reject
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
}
