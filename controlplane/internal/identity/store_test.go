package identity_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/identity"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/store"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/testutil"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/privacy"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

type nopNotifier struct{}

func (nopNotifier) GatewayChanged(context.Context, uuid.UUID) error { return nil }
func (nopNotifier) AgentsChanged(context.Context, uuid.UUID) error  { return nil }

// TestStoreSuite runs the data-layer guarantees on every store.
func TestStoreSuite(t *testing.T) {
	for name, url := range testutil.Databases(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db, err := store.Open(ctx, url, testutil.Logger())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ids, err := identity.New(db, testutil.Logger())
			if err != nil {
				t.Fatal(err)
			}
			tens, err := tenant.New(db, nopNotifier{}, testutil.KEK(), testutil.Logger())
			if err != nil {
				t.Fatal(err)
			}
			t.Run("isolation", func(t *testing.T) { testIsolation(t, db, ids, tens) })
			t.Run("invitations", func(t *testing.T) { testInvitations(t, ids, tens) })
			t.Run("api_keys", func(t *testing.T) { testAPIKeys(t, ids, tens) })
			t.Run("sessions", func(t *testing.T) { testSessions(t, ids) })
		})
	}
}

func login(t *testing.T, ids *identity.Service, email string) *ent.User {
	t.Helper()
	u, err := ids.Login(context.Background(), identity.Claims{Issuer: "https://idp.test", Subject: "sub-" + email, Email: email})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func as(t *testing.T, ids *identity.Service, u *ent.User, tenantID uuid.UUID) context.Context {
	t.Helper()
	v, err := ids.UserViewer(context.Background(), u.ID, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	return viewer.NewContext(context.Background(), v)
}

func testIsolation(t *testing.T, db *ent.Client, ids *identity.Service, tens *tenant.Service) {
	ctx := context.Background()
	alice, bob := login(t, ids, "alice@a.test"), login(t, ids, "bob@b.test")
	ta, err := tens.CreateTenant(ctx, "A", "iso-a", alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := tens.CreateTenant(ctx, "B", "iso-b", bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	actx, bctx := as(t, ids, alice, ta.ID), as(t, ids, bob, tb.ID)
	ga, err := tens.CreateGateway(actx, ta.ID, "gw-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tens.CreateGateway(bctx, tb.ID, "gw-b"); err != nil {
		t.Fatal(err)
	}

	// The data layer alone: a raw query sees only the viewer's tenant.
	all, err := db.Gateway.Query().All(actx)
	if err != nil || len(all) != 1 || all[0].ID != ga.ID {
		t.Fatalf("alice's raw query saw %v (err %v), want only gw-a", all, err)
	}
	if n, err := db.Tenant.Query().Count(bctx); err != nil || n != 1 {
		t.Fatalf("bob sees %d tenants (err %v), want 1", n, err)
	}
	if _, err := db.Gateway.Get(bctx, ga.ID); !ent.IsNotFound(err) {
		t.Fatalf("bob got alice's gateway by id: err %v", err)
	}
	// Creating in another tenant is denied by the privacy rule itself.
	if err := db.Gateway.Create().SetTenantID(ta.ID).SetName("sneaky").Exec(bctx); !errors.Is(err, privacy.Deny) {
		t.Fatalf("bob created a gateway in tenant A: err %v", err)
	}
	// Updating another tenant's row finds nothing to update.
	if err := db.Gateway.UpdateOneID(ga.ID).SetName("renamed").Exec(bctx); !ent.IsNotFound(err) {
		t.Fatalf("bob renamed alice's gateway: err %v", err)
	}
	// No viewer, no data.
	if _, err := db.Gateway.Query().All(ctx); !errors.Is(err, privacy.Deny) {
		t.Fatalf("query without viewer: err %v, want deny", err)
	}
	if _, err := db.User.Query().All(actx); !errors.Is(err, privacy.Deny) {
		t.Fatalf("users are system-only, yet alice listed them: %v", err)
	}
	// Services: another tenant's objects are not found; asking for another
	// tenant is not found either.
	if _, err := tens.Gateway(bctx, tb.ID, ga.ID); !errors.Is(err, authz.ErrNotFound) {
		t.Fatalf("service gave bob alice's gateway: %v", err)
	}
	if _, err := tens.Gateways(bctx, ta.ID); !errors.Is(err, authz.ErrNotFound) {
		t.Fatalf("service listed tenant A for bob: %v", err)
	}
	if _, err := ids.UserViewer(ctx, bob.ID, ta.ID); !errors.Is(err, authz.ErrNotFound) {
		t.Fatalf("bob became a viewer of tenant A: %v", err)
	}
	// A read-only member cannot write, neither through the service nor raw.
	vctx := viewer.NewContext(ctx, viewer.Viewer{TenantID: ta.ID, Role: viewer.RoleViewer, Actor: "test:viewer"})
	if _, err := tens.CreateGateway(vctx, ta.ID, "nope"); !errors.Is(err, authz.ErrPermissionDenied) {
		t.Fatalf("viewer created a gateway: %v", err)
	}
	if err := db.Gateway.UpdateOneID(ga.ID).SetName("nope").Exec(vctx); !errors.Is(err, privacy.Deny) {
		t.Fatalf("viewer renamed a gateway in the data layer: %v", err)
	}
	// Every mutation above left an audit event in its own tenant only.
	evs, err := db.AuditEvent.Query().All(actx)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range evs {
		if e.TenantID != ta.ID {
			t.Fatalf("audit event of another tenant visible: %+v", e)
		}
		actions = append(actions, e.Action+" by "+e.Actor)
	}
	want := map[string]bool{"tenant.create by system": true, "gateway.create by user:alice@a.test": true}
	for _, a := range actions {
		delete(want, a)
	}
	if len(want) != 0 {
		t.Fatalf("audit log %v lacks %v", actions, want)
	}
}

func testInvitations(t *testing.T, ids *identity.Service, tens *tenant.Service) {
	ctx := context.Background()
	owner := login(t, ids, "owner@inv.test")
	ten, err := tens.CreateTenant(ctx, "Inv", "inv", owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	octx := as(t, ids, owner, ten.ID)
	if _, err := ids.Invite(octx, ten.ID, "not an email", viewer.RoleViewer); !errors.Is(err, authz.ErrInvalid) {
		t.Fatalf("bad email: %v", err)
	}
	if _, err := ids.Invite(octx, ten.ID, "Carol@Inv.test", viewer.RoleApprover); err != nil {
		t.Fatal(err)
	}
	carol := login(t, ids, "carol@inv.test")
	cv, err := ids.UserViewer(ctx, carol.ID, ten.ID)
	if err != nil || cv.Role != viewer.RoleApprover {
		t.Fatalf("carol after login: %+v, %v; want approver", cv, err)
	}
	// An approver cannot invite; an admin cannot grant owner.
	cctx := viewer.NewContext(ctx, cv)
	if _, err := ids.Invite(cctx, ten.ID, "dave@inv.test", viewer.RoleViewer); !errors.Is(err, authz.ErrPermissionDenied) {
		t.Fatalf("approver invited: %v", err)
	}
	actx := viewer.NewContext(ctx, viewer.Viewer{TenantID: ten.ID, Role: viewer.RoleAdmin, Actor: "test:admin"})
	if _, err := ids.Invite(actx, ten.ID, "eve@inv.test", viewer.RoleOwner); !errors.Is(err, authz.ErrPermissionDenied) {
		t.Fatalf("admin granted owner: %v", err)
	}
	// The last owner cannot be demoted or removed.
	ms, err := ids.Members(octx, ten.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Email == "owner@inv.test" {
			if err := ids.SetRole(octx, ten.ID, m.ID, viewer.RoleViewer); !errors.Is(err, authz.ErrInvalid) {
				t.Fatalf("demoted the last owner: %v", err)
			}
			if err := ids.RemoveMember(octx, ten.ID, m.ID); !errors.Is(err, authz.ErrInvalid) {
				t.Fatalf("removed the last owner: %v", err)
			}
		}
	}
}

func testAPIKeys(t *testing.T, ids *identity.Service, tens *tenant.Service) {
	ctx := context.Background()
	owner := login(t, ids, "owner@keys.test")
	ten, err := tens.CreateTenant(ctx, "Keys", "keys", owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	octx := as(t, ids, owner, ten.ID)
	secret, k, err := ids.CreateAPIKey(octx, ten.ID, "ci", viewer.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ids.APIKeyViewer(ctx, secret)
	if err != nil || v.TenantID != ten.ID || v.Role != viewer.RoleAdmin || v.APIKeyID != k.ID {
		t.Fatalf("key viewer %+v, %v", v, err)
	}
	for _, bad := range []string{"", "pcak_", secret + "x", "Bearer " + secret} {
		if _, err := ids.APIKeyViewer(ctx, bad); !errors.Is(err, authz.ErrUnauthenticated) {
			t.Fatalf("key %q accepted: %v", bad, err)
		}
	}
	if err := ids.RevokeAPIKey(octx, ten.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ids.APIKeyViewer(ctx, secret); !errors.Is(err, authz.ErrUnauthenticated) {
		t.Fatalf("revoked key accepted: %v", err)
	}
}

func testSessions(t *testing.T, ids *identity.Service) {
	ctx := context.Background()
	u := login(t, ids, "sess@s.test")
	tok, err := ids.CreateSession(ctx, u.ID, uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	se, err := ids.Session(ctx, tok)
	if err != nil || se.UserID != u.ID || se.CSRFToken == "" {
		t.Fatalf("session %+v, %v", se, err)
	}
	if err := ids.SetSessionTenant(ctx, se, uuid.New()); !errors.Is(err, authz.ErrNotFound) {
		t.Fatalf("switched to a tenant the user is not in: %v", err)
	}
	if err := ids.EndSession(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := ids.Session(ctx, tok); !errors.Is(err, authz.ErrUnauthenticated) {
		t.Fatalf("ended session still valid: %v", err)
	}
}
