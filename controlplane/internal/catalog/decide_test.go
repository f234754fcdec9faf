package catalog_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/catalog"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/store"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/testutil"
	"github.com/portcullis-mcp/portcullis/ent/catalogentry"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

const remote = `{"name":"io.acme/tickets","version":"3.1.0","description":"Tickets","remotes":[{"type":"streamable-http","url":"https://mcp.acme.test/mcp"}]}`

// TestDecide checks who may decide on an entry, and that two people
// deciding at once never end with a decision overwritten.
func TestDecide(t *testing.T) {
	for name, url := range testutil.Databases(t) {
		t.Run(name, func(t *testing.T) {
			db, err := store.Open(context.Background(), url, testutil.Logger())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			tenantID := testutil.NewGateway(t, db).TenantID
			as := func(role viewer.Role) context.Context {
				id := uuid.New()
				return viewer.NewContext(context.Background(), viewer.Viewer{TenantID: tenantID, Role: role, UserID: id, Actor: "user:" + id.String()[:8]})
			}
			cat, err := catalog.New(db, testutil.Logger())
			if err != nil {
				t.Fatal(err)
			}
			admin := as(viewer.RoleAdmin)
			e, err := cat.ImportServerJSON(admin, tenantID, []byte(remote), catalog.ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cat.Decide(admin, tenantID, e.ID, false, ""); !errors.Is(err, authz.ErrPermissionDenied) {
				t.Fatalf("the importer approved: %v", err)
			}
			if _, err := cat.Decide(as(viewer.RoleViewer), tenantID, e.ID, false, ""); !errors.Is(err, authz.ErrPermissionDenied) {
				t.Fatalf("a viewer approved: %v", err)
			}
			if _, err := cat.Decide(viewer.NewContext(context.Background(), viewer.Viewer{TenantID: uuid.New(), Role: viewer.RoleOwner, UserID: uuid.New()}), tenantID, e.ID, false, ""); !errors.Is(err, authz.ErrNotFound) {
				t.Fatalf("another tenant's owner: %v", err)
			}

			// One approves while another rejects: one wins, and the entry says which.
			var wg sync.WaitGroup
			results := make([]error, 2)
			for i, reject := range []bool{false, true} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, results[i] = cat.Decide(as(viewer.RoleApprover), tenantID, e.ID, reject, "")
				}()
			}
			wg.Wait()
			got, err := db.CatalogEntry.Get(viewer.System(context.Background()), e.ID)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case results[0] == nil && results[1] == nil:
				t.Fatalf("both decisions took effect; the entry is %s with %d decisions", got.Status, len(got.Decisions))
			case results[0] == nil && got.Status != catalogentry.StatusApproved, results[1] == nil && got.Status != catalogentry.StatusRejected:
				t.Fatalf("results %v, entry %s", results, got.Status)
			case results[0] != nil && results[1] != nil:
				t.Fatalf("neither decision took effect: %v", results)
			}
			if len(got.Decisions) != 1 {
				t.Fatalf("decisions %+v", got.Decisions)
			}
		})
	}
}
