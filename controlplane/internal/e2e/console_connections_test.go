package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/telemetry"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/connection"
	"github.com/portcullis-mcp/portcullis/ent/policyversion"
	"github.com/portcullis-mcp/portcullis/ent/user"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// TestConsoleConnections: a member who signs in with the identity provider
// the gateways authenticate clients with sees which upstreams they
// connected and revokes their own connection, not another person's; the
// gateway's events keep the state.
func TestConsoleConnections(t *testing.T) {
	cp := startConsole(t)
	sys := viewer.System(context.Background())
	ten, err := cp.Tenants.CreateTenant(sys, "Acme", "acme", uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.IDs.Invite(sys, ten.ID, alice.Email, viewer.RoleOwner); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.IDs.Invite(sys, ten.ID, bob.Email, viewer.RoleViewer); err != nil {
		t.Fatal(err)
	}
	gw, err := cp.Tenants.CreateGateway(sys, ten.ID, "vpc")
	if err != nil {
		t.Fatal(err)
	}
	b := browser(t)
	base := cp.PublicURL()
	signIn(t, b, base, bob)
	bobUser := cp.DB.User.Query().Where(user.Email(bob.Email)).OnlyX(sys)
	// The gateways authenticate clients with the console's provider, so bob
	// is "user:<his subject>" at them too.
	if err := cp.Access.SetClientIdentityProvider(sys, ten.ID, bobUser.Issuer, "groups"); err != nil {
		t.Fatal(err)
	}
	ag, err := cp.DB.Agent.Create().SetTenantID(ten.ID).SetGatewayID(gw.ID).SetHostname("vpc-host").SetVersion("dev").
		SetCertFingerprint("fp-connections").SetConnected(true).SetLastSeen(time.Now()).Save(sys)
	if err != nil {
		t.Fatal(err)
	}
	bobs, others := "user:"+bobUser.Subject, "user:someone-else"
	var evs []*agentv1.CallEvent
	for i, who := range []string{bobs, others} {
		evs = append(evs, &agentv1.CallEvent{Id: fmt.Sprintf("connect-%d", i), Time: timestamppb.New(time.Now().Add(-time.Minute)), Upstream: "tickets",
			Principal: who, Method: telemetry.MethodConnect, Decision: agentv1.Decision_DECISION_ALLOW, UpstreamIdentity: "tickets-" + fmt.Sprint(i)})
	}
	if _, err := cp.Telemetry.Ingest(sys, ag, evs, 0); err != nil {
		t.Fatal(err)
	}

	run(t, b, "the events", chromedp.Navigate(base+"/telemetry"), chromedp.WaitVisible(tid("events")))
	if got := textOf(t, b, tid("events")); !strings.Contains(got, "oauth/connect") || !strings.Contains(got, "as tickets-0 upstream") {
		t.Fatalf("events: %q", got)
	}
	run(t, b, "bob's connections", chromedp.Navigate(base+"/connections"), chromedp.WaitVisible(tid("connections")))
	if got := textOf(t, b, tid("connection-tickets-"+bobs)); !strings.Contains(got, "tickets-0") || !strings.Contains(got, "you") || !strings.Contains(got, "connected") {
		t.Fatalf("bob's row: %q", got)
	}
	if n := count(t, b, `[data-testid="connection-revoke-tickets-`+others+`"]`); n != 0 {
		t.Fatal("a viewer is offered to revoke another person's connection")
	}
	other := cp.DB.Connection.Query().Where(connection.Principal(others)).OnlyX(sys)
	bobCtx := viewer.NewContext(context.Background(), viewer.Viewer{TenantID: ten.ID, Role: viewer.RoleViewer, UserID: bobUser.ID, Actor: "user:" + bob.Email})
	if _, err := cp.Access.RevokeConnection(bobCtx, ten.ID, other.ID); err == nil || !strings.Contains(err.Error(), "needs the admin role") {
		t.Fatalf("bob revoking another person's connection: %v", err)
	}
	run(t, b, "bob revokes his own",
		chromedp.Click(tid("connection-revoke-tickets-"+bobs)),
		chromedp.WaitNotPresent(tid("connection-revoke-tickets-"+bobs)),
		chromedp.WaitVisible(tid("connection-state-tickets-"+bobs)),
	)
	if got := textOf(t, b, tid("connection-state-tickets-"+bobs)); !strings.HasPrefix(got, "revoked") {
		t.Fatalf("bob's connection after revoking: %q", got)
	}
	// The gateway's own disconnect event, arriving later, keeps it revoked; a new consent connects it again.
	later := []*agentv1.CallEvent{
		{Id: "disconnect-0", Time: timestamppb.Now(), Upstream: "tickets", Principal: bobs, Method: telemetry.MethodDisconnect, Reason: "revoked by an admin"},
		{Id: "connect-again", Time: timestamppb.New(time.Now().Add(time.Second)), Upstream: "tickets", Principal: others, Method: telemetry.MethodConnect, UpstreamIdentity: "tickets-9"},
	}
	if _, err := cp.Telemetry.Ingest(sys, ag, later, 0); err != nil {
		t.Fatal(err)
	}
	if c := cp.DB.Connection.Query().Where(connection.Principal(bobs)).OnlyX(sys); c.State != connection.StateRevoked || c.RevokedBy == "" {
		t.Fatalf("bob's connection: %s by %q", c.State, c.RevokedBy)
	}
	if c := cp.DB.Connection.Query().Where(connection.Principal(others)).OnlyX(sys); c.State != connection.StateConnected || c.UpstreamIdentity != "tickets-9" {
		t.Fatalf("the other connection: %s as %q", c.State, c.UpstreamIdentity)
	}
	// The revocation is in the gateway's newest bundle.
	eventually(t, "the revocation in the gateway's bundle", func() error {
		pv, err := cp.DB.PolicyVersion.Query().Where(policyversion.GatewayID(gw.ID)).Order(ent.Desc(policyversion.FieldVersion)).First(sys)
		if err != nil {
			return err
		}
		var bundle agentv1.PolicyBundle
		if err := proto.Unmarshal(pv.Payload, &bundle); err != nil {
			return err
		}
		if revs := bundle.GetGrantRevocations(); len(revs) != 1 || revs[0].GetPrincipal() != bobs || revs[0].GetUpstream() != "tickets" {
			return fmt.Errorf("revocations in bundle %d: %v", pv.Version, revs)
		}
		return nil
	})
}
