// Package adminapi serves the admin API (portcullis.admin.v1) with Connect:
// it authenticates the caller, builds the viewer, calls the domain services
// and maps their errors to Connect codes. It holds no business rules.
package adminapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/identity"
	"github.com/portcullis-mcp/portcullis/ent/privacy"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// Header and cookie names shared with the console.
const (
	TenantHeader  = "Portcullis-Tenant"
	SessionCookie = "__Host-portcullis_session"
	// DevSessionCookie is used when the console is served over plain HTTP
	// (dev), where browsers refuse __Host- cookies.
	DevSessionCookie = "portcullis_session"
)

// principal is who called: a user (via session) or an API key, plus the
// viewer for the tenant the call acts in (zero when none was named).
type principal struct {
	userID uuid.UUID
	apiKey bool
	viewer viewer.Viewer
}

type principalKey struct{}

// Authenticator turns request credentials into a principal.
type Authenticator struct {
	IDs *identity.Service
}

// SessionToken returns the session cookie's value, if any.
func SessionToken(h http.Header) string {
	r := http.Request{Header: h}
	for _, name := range []string{SessionCookie, DevSessionCookie} {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

func (a *Authenticator) authenticate(ctx context.Context, h http.Header) (principal, error) {
	if auth := h.Get("Authorization"); auth != "" {
		secret, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok {
			return principal{}, connect.NewError(connect.CodeUnauthenticated, errors.New("the Authorization header must be \"Bearer pcak_...\""))
		}
		v, err := a.IDs.APIKeyViewer(ctx, strings.TrimSpace(secret))
		if err != nil {
			return principal{}, toConnect(err)
		}
		return principal{apiKey: true, viewer: v}, nil
	}
	tok := SessionToken(h)
	if tok == "" {
		return principal{}, connect.NewError(connect.CodeUnauthenticated, errors.New("no credentials: send \"Authorization: Bearer <API key>\" (create one in the console under API keys)"))
	}
	se, err := a.IDs.Session(ctx, tok)
	if err != nil {
		return principal{}, toConnect(err)
	}
	p := principal{userID: se.UserID}
	tenantID := se.TenantID
	if t := h.Get(TenantHeader); t != "" {
		if tenantID, err = uuid.Parse(t); err != nil {
			return principal{}, connect.NewError(connect.CodeInvalidArgument, errors.New("the Portcullis-Tenant header must be a tenant id"))
		}
	}
	if tenantID != uuid.Nil {
		if p.viewer, err = a.IDs.UserViewer(ctx, se.UserID, tenantID); err != nil {
			return principal{}, toConnect(err)
		}
	}
	return p, nil
}

// Interceptor authenticates every call and puts the viewer in its context.
func (a *Authenticator) Interceptor() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if req.Spec().IsClient {
				return next(ctx, req)
			}
			p, err := a.authenticate(ctx, req.Header())
			if err != nil {
				return nil, err
			}
			ctx = context.WithValue(ctx, principalKey{}, p)
			if p.viewer.TenantID != uuid.Nil {
				ctx = viewer.NewContext(ctx, p.viewer)
			}
			return next(ctx, req)
		}
	}
}

func principalFrom(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// tenantOf is the tenant a call acts in, or an error asking for one.
func tenantOf(ctx context.Context) (uuid.UUID, error) {
	v, ok := viewer.FromContext(ctx)
	if !ok || v.TenantID == uuid.Nil {
		return uuid.Nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("no tenant chosen: send the Portcullis-Tenant header with a tenant id"))
	}
	return v.TenantID, nil
}

// toConnect maps domain errors to Connect codes; anything else is internal
// and its text is not shown to the caller.
func toConnect(err error) error {
	var ce *connect.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, authz.ErrUnauthenticated):
		return connect.NewError(connect.CodeUnauthenticated, errors.New("not authenticated: the API key or session is unknown, revoked or expired"))
	case errors.Is(err, authz.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, authz.ErrPermissionDenied), errors.Is(err, privacy.Deny):
		return connect.NewError(connect.CodePermissionDenied, err)
	case errors.Is(err, authz.ErrInvalid):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, authz.ErrConflict):
		return connect.NewError(connect.CodeAlreadyExists, err)
	case errors.Is(err, authz.ErrPrecondition):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	return connect.NewError(connect.CodeInternal, errors.New("internal error; see the control plane's log"))
}

func parseID(s, what string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, connect.NewError(connect.CodeInvalidArgument, errors.New(what+" must be a UUID"))
	}
	return id, nil
}
