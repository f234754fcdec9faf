package devidp

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Resource indicators (RFC 8707): a client that names the resource it
// wants a token for at the authorization endpoint gets access tokens with
// that audience, as a real authorization server for MCP servers issues
// them. zitadel's example storage gives every token the client's id as
// its only audience; the store adds the resource.

type resourceKey struct{}

// withResource carries the resource an authorization request names to the
// store, which keeps it with the request.
func withResource(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/authorize" {
			if res := r.URL.Query().Get("resource"); res != "" {
				if u, err := url.Parse(res); err == nil && u.IsAbs() && u.Fragment == "" {
					r = r.WithContext(context.WithValue(r.Context(), resourceKey{}, res))
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// resourceRequest is an authorization request with its resource.
type resourceRequest struct {
	*storage.AuthRequest
	resource string
}

// GetAudience implements op.AuthRequest: the client and the resource.
func (r resourceRequest) GetAudience() []string {
	return append(r.AuthRequest.GetAudience(), r.resource)
}

func (s *store) withResource(ar op.AuthRequest) op.AuthRequest {
	if sar, ok := ar.(*storage.AuthRequest); ok {
		if res, ok := s.resources.Load(sar.GetID()); ok {
			return resourceRequest{sar, res.(string)}
		}
	}
	return ar
}

// CreateAuthRequest implements op.Storage.
func (s *store) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	ar, err := s.Storage.CreateAuthRequest(ctx, req, userID)
	if res, _ := ctx.Value(resourceKey{}).(string); err == nil && res != "" {
		s.resources.Store(ar.GetID(), res)
	}
	return s.withResource(ar), err
}

// AuthRequestByID implements op.Storage.
func (s *store) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	ar, err := s.Storage.AuthRequestByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.withResource(ar), nil
}

// AuthRequestByCode implements op.Storage.
func (s *store) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	ar, err := s.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	return s.withResource(ar), nil
}

// DeleteAuthRequest implements op.Storage.
func (s *store) DeleteAuthRequest(ctx context.Context, id string) error {
	s.resources.Delete(id)
	return s.Storage.DeleteAuthRequest(ctx, id)
}

// CreateAccessToken implements op.Storage: the example storage knows its own request type.
func (s *store) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	if rr, ok := req.(resourceRequest); ok {
		req = rr.AuthRequest
	}
	return s.Storage.CreateAccessToken(ctx, req)
}

// CreateAccessAndRefreshTokens implements op.Storage; the refresh token
// keeps the resource, so refreshed access tokens have it too.
func (s *store) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	rr, ok := req.(resourceRequest)
	if !ok {
		return s.Storage.CreateAccessAndRefreshTokens(ctx, req, current)
	}
	id, refresh, exp, err := s.Storage.CreateAccessAndRefreshTokens(ctx, rr.AuthRequest, current)
	if err == nil && refresh != "" {
		if t, err := s.TokenRequestByRefreshToken(ctx, refresh); err == nil {
			if rt, ok := t.(*storage.RefreshTokenRequest); ok && !slices.Contains(rt.Audience, rr.resource) {
				rt.Audience = append(rt.Audience, rr.resource)
			}
		}
	}
	return id, refresh, exp, err
}
