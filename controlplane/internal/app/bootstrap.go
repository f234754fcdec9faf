package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/ent/invitation"
	"github.com/portcullis-mcp/portcullis/ent/membership"
	"github.com/portcullis-mcp/portcullis/ent/user"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// Bootstrap makes the first tenant, its owner and an owner API key without
// a browser, for automation and the Helm chart. Every step is skipped when
// already done, so it can run on every start.
type Bootstrap struct {
	// TenantSlug names the tenant, created if missing.
	TenantSlug string
	// OwnerEmail is invited as owner unless already a member or invited;
	// the person becomes one at their first console login.
	OwnerEmail string
	// APIKeyFile, when it does not exist yet, receives a new owner API key
	// (mode 0600) for the CLI and API.
	APIKeyFile string
}

// Bootstrap applies b; it returns the API key written this time, if any.
func (a *App) Bootstrap(ctx context.Context, b Bootstrap) (string, error) {
	if b.TenantSlug == "" {
		if b.OwnerEmail != "" || b.APIKeyFile != "" {
			return "", errors.New("bootstrap: an owner or API key file needs a tenant (--bootstrap-tenant)")
		}
		return "", nil
	}
	sys := viewer.System(ctx) // bootstrapping is the operator's job, not a user's
	t, err := a.Tenants.TenantBySlug(sys, b.TenantSlug)
	if errors.Is(err, tenant.ErrNotFound) {
		t, err = a.Tenants.CreateTenant(sys, b.TenantSlug, b.TenantSlug, uuid.Nil)
		if err == nil {
			a.log.Info("bootstrap: tenant created", "tenant", b.TenantSlug)
		}
	}
	if err != nil {
		return "", fmt.Errorf("bootstrap tenant %q: %w", b.TenantSlug, err)
	}
	if email := strings.ToLower(strings.TrimSpace(b.OwnerEmail)); email != "" {
		member, err := a.DB.Membership.Query().Where(membership.TenantID(t.ID), membership.HasUserWith(user.EmailEqualFold(email))).Exist(sys)
		if err != nil {
			return "", err
		}
		invited, err := a.DB.Invitation.Query().Where(invitation.TenantID(t.ID), invitation.Email(email), invitation.AcceptedAtIsNil(),
			invitation.ExpiresAtGT(time.Now())).Exist(sys)
		if err != nil {
			return "", err
		}
		if !member && !invited {
			if _, err := a.IDs.Invite(sys, t.ID, email, viewer.RoleOwner); err != nil {
				return "", fmt.Errorf("bootstrap owner: %w", err)
			}
			a.log.Info("bootstrap: owner invited; they become owner at their first console login", "email", email)
		}
	}
	if b.APIKeyFile == "" {
		return "", nil
	}
	if _, err := os.Stat(b.APIKeyFile); err == nil {
		return "", nil // made on an earlier start
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("bootstrap API key file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(b.APIKeyFile), 0o700); err != nil {
		return "", fmt.Errorf("bootstrap API key file: %w", err)
	}
	f, err := os.OpenFile(b.APIKeyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("bootstrap API key file: %w", err)
	}
	secret, k, err := a.IDs.CreateAPIKey(sys, t.ID, "bootstrap", viewer.RoleOwner)
	if err == nil {
		_, err = f.WriteString(secret + "\n")
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(b.APIKeyFile)
		return "", fmt.Errorf("bootstrap API key: %w", err)
	}
	a.log.Info("bootstrap: owner API key written", "file", b.APIKeyFile, "key", k.ID)
	return secret, nil
}
