// Package authz holds the domain errors every service returns and the role
// check every service runs before it acts. The API and web layers map the
// errors to Connect codes and HTTP statuses.
package authz

import (
	"context"
	"errors"
	"fmt"

	"entgo.io/ent/privacy"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// Domain errors.
var (
	ErrNotFound         = errors.New("not found")
	ErrPermissionDenied = errors.New("permission denied")
	ErrUnauthenticated  = errors.New("not logged in")
	ErrInvalid          = errors.New("invalid argument")
	ErrConflict         = errors.New("already exists")
	// ErrPrecondition: the object is not in a state that allows the action.
	ErrPrecondition = errors.New("not possible now")
)

// Invalid wraps a user-facing validation message as ErrInvalid.
func Invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// Require checks that the caller may act on tenantID with at least role r.
// A viewer of another tenant gets ErrNotFound (the object's existence is not
// disclosed); a member with a lower role gets ErrPermissionDenied. Without a
// viewer, only a viewer.System context passes.
func Require(ctx context.Context, tenantID uuid.UUID, r viewer.Role) error {
	v, ok := viewer.FromContext(ctx)
	if !ok {
		if d, ok := privacy.DecisionFromContext(ctx); ok && d == nil { // viewer.System
			return nil
		}
		return ErrUnauthenticated
	}
	if v.TenantID != tenantID {
		return ErrNotFound
	}
	if v.Role < r {
		return fmt.Errorf("%w: this needs the %s role; you are %s", ErrPermissionDenied, r, v.Role)
	}
	return nil
}

// Actor names the caller for the audit log.
func Actor(ctx context.Context) string {
	if v, ok := viewer.FromContext(ctx); ok && v.Actor != "" {
		return v.Actor
	}
	return "system"
}

// DBError maps ent errors to domain errors, keeping the message.
func DBError(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case ent.IsNotFound(err):
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	case ent.IsConstraintError(err):
		return fmt.Errorf("%s: %w", what, ErrConflict)
	case ent.IsValidationError(err):
		return fmt.Errorf("%s: %w: %v", what, ErrInvalid, err)
	case errors.Is(err, privacy.Deny):
		return fmt.Errorf("%s: %w", what, ErrPermissionDenied)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// PrincipalKey names the person behind the caller stably ("user:<id>"; an
// API key counts as the user who created it, "apikey:<id>" only for a key
// nobody did), for rules such as "the requester may not approve" and "one
// approval per person"; "" for system jobs.
func PrincipalKey(ctx context.Context) string {
	v, ok := viewer.FromContext(ctx)
	switch {
	case !ok:
		return ""
	case v.UserID != uuid.Nil:
		return "user:" + v.UserID.String()
	case v.KeyOwner != uuid.Nil:
		return "user:" + v.KeyOwner.String()
	case v.APIKeyID != uuid.Nil:
		return "apikey:" + v.APIKeyID.String()
	}
	return ""
}
