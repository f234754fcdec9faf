package tenant

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/audit"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/keyring"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/policy"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/agent"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// SigningKeyState is a tenant's bundle-signing key and a rotation under way.
type SigningKeyState struct {
	KeyID, NextKeyID string
	// Pending names the agents ("host (gateway)") that have not applied
	// their gateway's latest bundle, which announces the next key.
	Pending []string
}

// SigningKey describes the tenant's bundle-signing key.
func (s *Service) SigningKey(ctx context.Context, tenantID uuid.UUID) (SigningKeyState, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return SigningKeyState{}, err
	}
	t, err := s.db.Tenant.Get(ctx, tenantID)
	if err != nil {
		return SigningKeyState{}, authz.DBError("tenant", err)
	}
	st := SigningKeyState{KeyID: policy.KeyID(t.SigningPublicKey)}
	if !rotating(t) {
		return st, nil
	}
	st.NextKeyID = policy.KeyID(*t.NextSigningPublicKey)
	agents, err := s.db.Agent.Query().Where(agent.TenantID(tenantID), agent.Revoked(false)).WithGateway().All(ctx)
	if err != nil {
		return st, err
	}
	latest := map[uuid.UUID]uint64{}
	for _, a := range agents {
		v, ok := latest[a.GatewayID]
		if !ok {
			if v, err = s.PolicyVersion(ctx, tenantID, a.GatewayID); err != nil {
				return st, err
			}
			latest[a.GatewayID] = v
		}
		if a.AppliedVersion < v {
			st.Pending = append(st.Pending, fmt.Sprintf("%s (%s)", a.Hostname, a.Edges.Gateway.Name))
		}
	}
	return st, nil
}

// RotateSigningKey starts, completes or cancels a rotation of the tenant's
// bundle-signing key; every gateway of the tenant gets a new bundle.
func (s *Service) RotateSigningKey(ctx context.Context, tenantID uuid.UUID, action string, force bool) (SigningKeyState, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return SigningKeyState{}, err
	}
	before, err := s.SigningKey(ctx, tenantID)
	if err != nil {
		return before, err
	}
	t, err := s.db.Tenant.Get(ctx, tenantID)
	if err != nil {
		return before, authz.DBError("tenant", err)
	}
	var apply func(*ent.TenantUpdateOne) error
	switch action {
	case "start":
		if rotating(t) {
			return before, fmt.Errorf("%w: a rotation to key %s is under way: complete or cancel it", authz.ErrPrecondition, before.NextKeyID)
		}
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return before, err
		}
		sealed, err := keyring.SealTenantKey(s.kek, tenantID, priv.Seed())
		if err != nil {
			return before, err
		}
		apply = func(u *ent.TenantUpdateOne) error {
			return u.SetNextSigningPrivateKey(sealed).SetNextSigningPublicKey(pub).Exec(ctx)
		}
	case "complete":
		if !rotating(t) {
			return before, fmt.Errorf("%w: no rotation is under way: start one first", authz.ErrPrecondition)
		}
		if len(before.Pending) > 0 && !force {
			return before, fmt.Errorf("%w: %d agents have not applied the bundle announcing key %s yet: %s. Wait for them, or complete with force: they then refuse every new bundle and must be enrolled again",
				authz.ErrPrecondition, len(before.Pending), before.NextKeyID, strings.Join(before.Pending, ", "))
		}
		apply = func(u *ent.TenantUpdateOne) error {
			return u.SetSigningPrivateKey(*t.NextSigningPrivateKey).SetSigningPublicKey(*t.NextSigningPublicKey).
				ClearNextSigningPrivateKey().ClearNextSigningPublicKey().Exec(ctx)
		}
	case "cancel":
		if !rotating(t) {
			return before, fmt.Errorf("%w: no rotation is under way", authz.ErrPrecondition)
		}
		apply = func(u *ent.TenantUpdateOne) error {
			return u.ClearNextSigningPrivateKey().ClearNextSigningPublicKey().Exec(ctx)
		}
	default:
		return before, authz.Invalid("action %q: use start, complete or cancel", action)
	}
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		if err := apply(tx.Tenant.UpdateOneID(tenantID)); err != nil {
			return fmt.Errorf("rotating the signing key: %w", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "signing_key." + action, TargetType: "tenant",
			TargetID: tenantID.String(), TargetName: t.Slug,
			Before: map[string]any{"key_id": before.KeyID, "next_key_id": before.NextKeyID, "pending_agents": before.Pending, "forced": force}})
	})
	if err != nil {
		return before, err
	}
	if err := NotifyGateways(ctx, s.db, s.notify, tenantID); err != nil {
		return before, err
	}
	return s.SigningKey(ctx, tenantID)
}

// rotating is whether a rotation is under way (a NULL column may read as an
// empty key).
func rotating(t *ent.Tenant) bool {
	return t.NextSigningPublicKey != nil && len(*t.NextSigningPublicKey) > 0
}
