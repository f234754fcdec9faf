package devidp

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Service is a machine client that gets JWT access tokens with the client
// credentials grant, e.g. an AI agent calling a gateway. Its tokens carry
// the audiences and a "groups" claim given here.
type Service struct {
	ID, Secret string
	Audience   []string
	Groups     []string
}

// store adds the services to zitadel's example storage.
type store struct {
	*storage.Storage
	services map[string]Service
	clients  map[string]Client
	// resources are the RFC 8707 resources of authorization requests, by request id.
	resources sync.Map
}

// ClientCredentials implements op.ClientCredentialsStorage.
func (s *store) ClientCredentials(ctx context.Context, clientID, clientSecret string) (op.Client, error) {
	svc, ok := s.services[clientID]
	if !ok {
		return s.Storage.ClientCredentials(ctx, clientID, clientSecret)
	}
	if svc.Secret != clientSecret {
		return nil, errors.New("wrong service client or secret")
	}
	return serviceClient{id: svc.ID}, nil
}

// ClientCredentialsTokenRequest implements op.ClientCredentialsStorage.
func (s *store) ClientCredentialsTokenRequest(ctx context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	svc, ok := s.services[clientID]
	if !ok {
		return s.Storage.ClientCredentialsTokenRequest(ctx, clientID, scopes)
	}
	return &oidc.JWTTokenRequest{Subject: svc.ID, Audience: svc.Audience, Scopes: scopes}, nil
}

// GetPrivateClaimsFromScopes adds a service's groups to its access tokens.
func (s *store) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	claims, err := s.Storage.GetPrivateClaimsFromScopes(ctx, userID, clientID, scopes)
	if svc, ok := s.services[clientID]; ok && err == nil {
		if claims == nil {
			claims = map[string]any{}
		}
		claims["groups"] = svc.Groups
	}
	return claims, err
}

// serviceClient is a confidential client allowed only the client credentials
// grant, whose access tokens are signed JWTs.
type serviceClient struct{ id string }

func (c serviceClient) GetID() string                     { return c.id }
func (serviceClient) RedirectURIs() []string              { return nil }
func (serviceClient) PostLogoutRedirectURIs() []string    { return nil }
func (serviceClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (serviceClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (serviceClient) ResponseTypes() []oidc.ResponseType  { return nil }
func (serviceClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials}
}
func (serviceClient) LoginURL(string) string               { return "" }
func (serviceClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (serviceClient) IDTokenLifetime() time.Duration       { return time.Hour }
func (serviceClient) DevMode() bool                        { return true }
func (serviceClient) IsScopeAllowed(string) bool           { return false }
func (serviceClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (serviceClient) ClockSkew() time.Duration             { return 0 }
func (serviceClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (serviceClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return slices.Clone(s) }
}
