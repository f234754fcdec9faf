package devidp

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Client is a confidential OAuth client such as a gateway acting for people
// at an upstream: it gets signed JWT access tokens with the authorization
// code flow (PKCE), refreshes them, and exchanges tokens (RFC 8693).
type Client struct {
	ID, Secret   string
	RedirectURIs []string
}

// GetClientByClientID implements op.Storage: the configured clients first.
func (s *store) GetClientByClientID(ctx context.Context, clientID string) (op.Client, error) {
	if c, ok := s.clients[clientID]; ok {
		return gatewayClient{c}, nil
	}
	if _, ok := s.services[clientID]; ok {
		return serviceClient{id: clientID}, nil // e.g. a service's token given in an exchange
	}
	return s.Storage.GetClientByClientID(ctx, clientID)
}

// AuthorizeClientIDSecret implements op.Storage.
func (s *store) AuthorizeClientIDSecret(ctx context.Context, clientID, clientSecret string) error {
	if c, ok := s.clients[clientID]; ok {
		if c.Secret != clientSecret {
			return errors.New("invalid secret")
		}
		return nil
	}
	return s.Storage.AuthorizeClientIDSecret(ctx, clientID, clientSecret)
}

// ValidateTokenExchangeRequest implements op.TokenExchangeStorage: a
// configured client may exchange an access token this provider issued
// (to a person or a service) for an access token with the audience it asks
// for, acting as the token's subject. zitadel's example storage allows
// only its admin users.
func (s *store) ValidateTokenExchangeRequest(ctx context.Context, req op.TokenExchangeRequest) error {
	if _, ok := s.clients[req.GetClientID()]; !ok {
		return s.Storage.ValidateTokenExchangeRequest(ctx, req)
	}
	if req.GetRequestedTokenType() == "" {
		req.SetRequestedTokenType(oidc.AccessTokenType)
	}
	if req.GetRequestedTokenType() != oidc.AccessTokenType || req.GetExchangeSubjectTokenType() != oidc.AccessTokenType {
		return errors.New("this provider exchanges access tokens for access tokens only")
	}
	if len(req.GetAudience()) == 0 {
		return errors.New("name the audience of the token asked for")
	}
	req.SetCurrentScopes(req.GetScopes())
	return nil
}

type gatewayClient struct{ c Client }

func (g gatewayClient) GetID() string                     { return g.c.ID }
func (g gatewayClient) RedirectURIs() []string            { return g.c.RedirectURIs }
func (gatewayClient) PostLogoutRedirectURIs() []string    { return nil }
func (gatewayClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (gatewayClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (gatewayClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (gatewayClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeTokenExchange}
}
func (gatewayClient) LoginURL(id string) string            { return "/login/username?authRequestID=" + id }
func (gatewayClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (gatewayClient) IDTokenLifetime() time.Duration       { return time.Hour }
func (gatewayClient) DevMode() bool                        { return true }
func (gatewayClient) IsScopeAllowed(string) bool           { return false }
func (gatewayClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (gatewayClient) ClockSkew() time.Duration             { return 0 }
func (gatewayClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (gatewayClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return slices.Clone(s) }
}
