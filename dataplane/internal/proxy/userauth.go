package proxy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/grants"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// Per-person authorization to upstreams.
//
// An upstream in AUTH_MODE_OAUTH_USER gets each principal's own OAuth token:
// the principal grants it once, through a consent link the gateway gives the
// client as a URL-mode elicitation (-32042 to a client with a session, an
// input request on protocol 2026-07-28); the gateway runs the authorization
// code flow with PKCE and the resource parameter (RFC 8707) at the upstream's
// authorization server, found from its protected-resource metadata (RFC 9728,
// RFC 8414), as a client it registered dynamically (RFC 7591) or the one
// configured. An upstream in AUTH_MODE_TOKEN_EXCHANGE gets a token the
// gateway exchanged for the caller's validated JWT (RFC 8693) at the
// identity provider. Either way the client's own token never goes upstream,
// and tokens stay in the gateway (grants: sealed, expiring, deletable).
//
// Requests for a principal reach the upstream on sessions of that principal
// only (the client session's own, or pooled sessions keyed by principal),
// whose HTTP client adds the principal's token (userTransport). The gateway's
// own discovery session carries the upstream's credential_ref, if any.

// perPerson reports whether the upstream authorizes each principal.
func perPerson(spec *agentv1.Upstream) bool {
	m := spec.GetAuth().GetMode()
	return m == agentv1.AuthMode_AUTH_MODE_OAUTH_USER || m == agentv1.AuthMode_AUTH_MODE_TOKEN_EXCHANGE
}

// oauthUser reports whether u takes each person's own OAuth grant.
func oauthUser(u *upstream) bool {
	return u.spec.GetAuth().GetMode() == agentv1.AuthMode_AUTH_MODE_OAUTH_USER
}

// Record kinds in the grant store.
const (
	kindGrant   = "grant"   // a principal's tokens for an upstream
	kindConsent = "consent" // an authorization under way, by state
	kindClient  = "client"  // the gateway's registered client at an upstream's authorization server
)

const (
	// consentTTL bounds how long a consent link works.
	consentTTL = 10 * time.Minute
	// grantTTL bounds how long an unused grant with a refresh token is kept.
	grantTTL = 30 * 24 * time.Hour
	// tokenLeeway renews a token this long before it expires.
	tokenLeeway = 30 * time.Second
	// maxCachedTokens bounds the in-memory token cache.
	maxCachedTokens = 10000
)

// grant is what the gateway holds for a principal at an upstream.
type grant struct {
	AccessToken  string    `json:"at"`
	RefreshToken string    `json:"rt,omitempty"`
	Expiry       time.Time `json:"exp,omitzero"`
	Subject      string    `json:"sub,omitempty"` // whom the upstream sees (for audit)
	ClientID     string    `json:"cid"`           // the client the tokens were issued to
	Created      time.Time `json:"created"`
}

// consent is an authorization code flow under way.
type consent struct {
	Upstream      string `json:"up"`
	Scope         string `json:"scope"` // grantScope when the link was made
	Principal     string `json:"p"`
	Verifier      string `json:"v"`
	ElicitationID string `json:"eid"`
	// The sign-in at the identity provider that proves who opened the
	// link: its PKCE verifier and nonce, and, once the person proved to be
	// the principal, the hash of the cookie of the browser they did it in.
	LoginVerifier string `json:"lv"`
	Nonce         string `json:"n"`
	Browser       string `json:"b,omitempty"`
}

// registered is the gateway's client at an authorization server.
type registered struct {
	Issuer       string `json:"iss"`
	ClientID     string `json:"id"`
	ClientSecret string `json:"secret,omitempty"`
}

// userAuth holds the per-person authorization state of a Proxy.
type userAuth struct {
	p     *Proxy
	store *grants.Store

	// exchanging is set while some upstream takes exchanged tokens: only
	// then are callers' JWTs kept.
	exchanging atomic.Bool
	// flight makes one fetch (refresh, exchange) per principal and upstream
	// at a time: a refresh token is rotated, so a second concurrent refresh
	// with the old one would be refused and cost the person their grant.
	flight singleflight.Group

	mu       sync.Mutex
	revoked  map[string]time.Time    // grantScope\x00principal → the newest admin revocation applied
	tokens   map[string]*cachedToken // grantScope\x00principal → a token good until its expiry
	subjects map[string]string       // principal → its latest validated JWT (token exchange)
	waiting  map[string]*mcp.ServerSession
}

type cachedToken struct {
	token, subject string
	expiry         time.Time
	until          time.Time // used from the cache until then
}

// recheck bounds how long a grant is used from memory before the store is
// read again, so that a disconnect made on another replica takes effect.
const recheck = time.Minute

func newUserAuth(p *Proxy, store *grants.Store) *userAuth {
	return &userAuth{p: p, store: store, tokens: map[string]*cachedToken{}, revoked: map[string]time.Time{}, subjects: map[string]string{}, waiting: map[string]*mcp.ServerSession{}}
}

// needConsent is a principal without a grant at an oauth_user upstream.
type needConsent struct{ upstream string }

func (e needConsent) Error() string {
	return fmt.Sprintf("upstream %q needs your authorization: call one of its tools for the gateway's consent link", e.upstream)
}

// remember keeps the principal's latest validated JWT for token exchange.
func (a *userAuth) remember(principal, jwt string) {
	if !a.exchanging.Load() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.subjects[principal] == jwt {
		return
	}
	if len(a.subjects) >= maxCachedTokens {
		clear(a.subjects) // a principal's next request brings its token again
	}
	a.subjects[principal] = jwt
}

// token returns the principal's access token for u and whom the upstream
// sees, from the cache, the grant store (refreshing it), or an exchange.
func (a *userAuth) token(ctx context.Context, u *upstream, principal string) (*cachedToken, error) {
	if principal == "" {
		return nil, fmt.Errorf("upstream %q acts as each person: authenticate to the gateway (a client key or a token from the identity provider)", u.spec.GetName())
	}
	key := grantKey(grantScope(u), principal)
	a.mu.Lock()
	ct := a.tokens[key]
	subject := a.subjects[principal]
	a.mu.Unlock()
	if now := time.Now(); ct != nil && now.Before(ct.until) && now.Add(tokenLeeway).Before(ct.expiry) {
		return ct, nil
	}
	v, err, _ := a.flight.Do(key, func() (any, error) {
		if u.spec.GetAuth().GetMode() == agentv1.AuthMode_AUTH_MODE_TOKEN_EXCHANGE {
			ct, err := a.exchange(ctx, u, subject)
			if err == nil {
				ct.until = ct.expiry
			}
			return ct, err
		}
		ct, err := a.fromGrant(ctx, u, principal)
		if err == nil {
			ct.until = time.Now().Add(recheck)
		}
		return ct, err
	})
	if err != nil {
		return nil, err
	}
	ct = v.(*cachedToken)
	a.mu.Lock()
	if len(a.tokens) >= maxCachedTokens {
		clear(a.tokens)
	}
	a.tokens[key] = ct
	a.mu.Unlock()
	return ct, nil
}

// forget drops a cached token (the upstream refused it, or it was revoked).
func (a *userAuth) forget(scope, principal string) {
	a.mu.Lock()
	delete(a.tokens, grantKey(scope, principal))
	a.mu.Unlock()
}

// grantScope is what a person's grant is for: the upstream's name and the
// resource its tokens are for. A grant does not follow an upstream whose
// URL (or resource) an admin changed to another server.
func grantScope(u *upstream) string {
	return u.spec.GetName() + " " + resourceOf(u)
}

// grantKey names a principal's grant in memory (the token cache, applied
// revocations).
func grantKey(scope, principal string) string { return scope + "\x00" + principal }

// fromGrant reads the principal's grant, refreshing (and rotating) it when
// it expired; without one, or when the refresh is refused, consent is needed.
func (a *userAuth) fromGrant(ctx context.Context, u *upstream, principal string) (*cachedToken, error) {
	name, scope := u.spec.GetName(), grantScope(u)
	var g grant
	ok, err := a.store.Get(ctx, kindGrant, scope, principal, &g)
	if err != nil {
		return nil, fmt.Errorf("reading the grant for upstream %q: %w", name, err)
	}
	if !ok {
		return nil, needConsent{name}
	}
	if g.Expiry.IsZero() || time.Now().Add(tokenLeeway).Before(g.Expiry) {
		return &cachedToken{token: g.AccessToken, subject: g.Subject, expiry: expiryOr(g.Expiry)}, nil
	}
	if g.RefreshToken == "" {
		_ = a.store.Delete(ctx, kindGrant, scope, principal)
		a.event(methodDisconnect, name, principal, g.Subject, "the token expired, without a refresh token")
		return nil, needConsent{name}
	}
	cfg, _, err := a.config(ctx, u)
	if err != nil {
		return nil, err
	}
	if cfg.ClientID != g.ClientID {
		_ = a.store.Delete(ctx, kindGrant, scope, principal)
		return nil, needConsent{name}
	}
	tok, err := cfg.TokenSource(a.httpContext(ctx), &oauth2.Token{RefreshToken: g.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			// Revoked or expired: back to consent.
			_ = a.store.Delete(ctx, kindGrant, scope, principal)
			a.event(methodDisconnect, name, principal, g.Subject, "the authorization server refused the refresh ("+truncate(re.ErrorCode, 64)+")")
			a.p.log.Info("upstream grant refused on refresh; the person must authorize again", "upstream", name, "principal", principal, "err", re.ErrorCode)
			return nil, needConsent{name}
		}
		return nil, fmt.Errorf("refreshing the token for upstream %q: %w", name, err)
	}
	g.AccessToken, g.Expiry = tok.AccessToken, tok.Expiry
	if tok.RefreshToken != "" {
		g.RefreshToken = tok.RefreshToken // rotated
	}
	if s := subjectOf(tok); s != "" {
		g.Subject = s
	}
	if err := a.store.Put(ctx, kindGrant, scope, principal, g, grantTTL); err != nil {
		return nil, fmt.Errorf("keeping the refreshed grant: %w", err)
	}
	return &cachedToken{token: g.AccessToken, subject: g.Subject, expiry: expiryOr(g.Expiry)}, nil
}

// expiryOr is a token's expiry, or an hour from now for one without.
func expiryOr(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().Add(time.Hour)
	}
	return t
}

// exchange trades the caller's JWT for a token meant for u (RFC 8693).
func (a *userAuth) exchange(ctx context.Context, u *upstream, subjectJWT string) (*cachedToken, error) {
	name := u.spec.GetName()
	if subjectJWT == "" {
		return nil, fmt.Errorf("upstream %q takes a token exchanged for yours: authenticate to the gateway with a token from the identity provider, not a client key", name)
	}
	ua := u.spec.GetAuth()
	issuer := ua.GetIssuer()
	if issuer == "" {
		if pol := a.p.pol.Load(); pol != nil {
			issuer = pol.oidcIssuer
		}
	}
	if issuer == "" {
		return nil, fmt.Errorf("upstream %q: token exchange needs an issuer, and the gateway has no identity provider", name)
	}
	asm, err := auth.GetAuthServerMetadata(ctx, issuer, upstreamHTTPClient)
	if err != nil || asm == nil {
		return nil, fmt.Errorf("upstream %q: the identity provider's metadata (%s): %v", name, issuer, err)
	}
	secret, err := a.secret(u)
	if err != nil {
		return nil, err
	}
	// golang.org/x/oauth2 authenticates the client as the server takes it
	// (HTTP Basic first, RFC 6749 §2.3.1); oauthex.ExchangeToken sends the
	// secret only in the form, which some providers (zitadel) do not read.
	cfg := &oauth2.Config{ClientID: ua.GetClientId(), ClientSecret: secret, Endpoint: oauth2.Endpoint{TokenURL: asm.TokenEndpoint}}
	resource := resourceOf(u)
	opts := []oauth2.AuthCodeOption{
		oauth2.SetAuthURLParam("grant_type", oauthex.GrantTypeTokenExchange),
		oauth2.SetAuthURLParam("requested_token_type", tokenTypeAccess),
		oauth2.SetAuthURLParam("subject_token", subjectJWT),
		oauth2.SetAuthURLParam("subject_token_type", tokenTypeAccess),
		oauth2.SetAuthURLParam("audience", resource),
		oauth2.SetAuthURLParam("resource", resource),
	}
	if sc := ua.GetScopes(); len(sc) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("scope", strings.Join(sc, " ")))
	}
	tok, err := cfg.Exchange(a.httpContext(ctx), "", opts...)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: the identity provider refused the token exchange: %v", name, err)
	}
	return &cachedToken{token: tok.AccessToken, subject: subjectOf(tok), expiry: expiryOr(tok.Expiry)}, nil
}

// tokenTypeAccess is RFC 8693's type of an OAuth access token.
const tokenTypeAccess = "urn:ietf:params:oauth:token-type:access_token"

// resourceOf is the resource u's tokens are for.
func resourceOf(u *upstream) string {
	if r := u.spec.GetAuth().GetResource(); r != "" {
		return r
	}
	return u.spec.GetUrl()
}

// secret resolves the OAuth client's secret reference, if any.
func (a *userAuth) secret(u *upstream) (string, error) {
	ref := u.spec.GetAuth().GetClientSecretRef()
	if ref == "" {
		return "", nil
	}
	return u.creds.resolve(ref)
}

// httpContext makes oauth2 use the gateway's upstream HTTP client.
func (a *userAuth) httpContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, upstreamHTTPClient)
}

// config is the OAuth client for an oauth_user upstream: its authorization
// server from the configured issuer or the upstream's protected-resource
// metadata, and the configured client or one registered there before.
func (a *userAuth) config(ctx context.Context, u *upstream) (*oauth2.Config, *oauthex.AuthServerMeta, error) {
	name, ua := u.spec.GetName(), u.spec.GetAuth()
	issuer := ua.GetIssuer()
	if issuer == "" {
		prm, err := protectedResource(ctx, u.spec.GetUrl())
		if err != nil {
			return nil, nil, fmt.Errorf("upstream %q: finding its authorization server: %w", name, err)
		}
		issuer = prm.AuthorizationServers[0]
	}
	asm, err := auth.GetAuthServerMetadata(ctx, issuer, upstreamHTTPClient)
	if err != nil || asm == nil {
		return nil, nil, fmt.Errorf("upstream %q: the authorization server's metadata (%s): %v", name, issuer, err)
	}
	cfg := &oauth2.Config{ClientID: ua.GetClientId(), Scopes: ua.GetScopes(), RedirectURL: a.p.cfg.PublicURL + callbackPath,
		Endpoint: oauth2.Endpoint{AuthURL: asm.AuthorizationEndpoint, TokenURL: asm.TokenEndpoint}}
	if cfg.ClientID != "" {
		if cfg.ClientSecret, err = a.secret(u); err != nil {
			return nil, nil, err
		}
		return cfg, asm, nil
	}
	// No client configured: the one registered at this issuer before, or a new one.
	var reg registered
	ok, err := a.store.Get(ctx, kindClient, name, "", &reg)
	if err != nil {
		return nil, nil, err
	}
	if !ok || reg.Issuer != asm.Issuer {
		if asm.RegistrationEndpoint == "" {
			return nil, nil, fmt.Errorf("upstream %q: its authorization server %s offers no dynamic client registration; configure the gateway's OAuth client", name, asm.Issuer)
		}
		resp, err := oauthex.RegisterClient(ctx, asm.RegistrationEndpoint, &oauthex.ClientRegistrationMetadata{
			RedirectURIs: []string{cfg.RedirectURL}, ClientName: "Portcullis gateway",
			GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			Scope: strings.Join(ua.GetScopes(), " "),
		}, upstreamHTTPClient)
		if err != nil {
			return nil, nil, fmt.Errorf("upstream %q: registering the gateway at %s: %w", name, asm.Issuer, err)
		}
		reg = registered{Issuer: asm.Issuer, ClientID: resp.ClientID, ClientSecret: resp.ClientSecret}
		if err := a.store.Put(ctx, kindClient, name, "", reg, grants.MaxTTL); err != nil {
			return nil, nil, err
		}
	}
	cfg.ClientID, cfg.ClientSecret = reg.ClientID, reg.ClientSecret
	return cfg, asm, nil
}

// protectedResource reads an MCP server's RFC 9728 metadata: at the
// well-known URL with the server's path, then at the root.
func protectedResource(ctx context.Context, server string) (*oauthex.ProtectedResourceMetadata, error) {
	su, err := url.Parse(server)
	if err != nil {
		return nil, err
	}
	var last error
	for _, path := range []string{"/.well-known/oauth-protected-resource" + strings.TrimSuffix(su.Path, "/"), "/.well-known/oauth-protected-resource"} {
		mu := url.URL{Scheme: su.Scheme, Host: su.Host, Path: path}
		prm, err := oauthex.GetProtectedResourceMetadata(ctx, mu.String(), server, upstreamHTTPClient)
		if err == nil && len(prm.AuthorizationServers) > 0 {
			return prm, nil
		}
		if err == nil {
			err = errors.New("its metadata names no authorization server")
		}
		last = err
	}
	return nil, last
}

// subjectOf is whom a token names, for audit: the "sub" of a JWT access
// token or of the ID token that came with it. Not verified: the upstream
// verifies the token; this only records what it will see.
func subjectOf(tok *oauth2.Token) string {
	for _, t := range []string{tok.AccessToken, fmt.Sprint(tok.Extra("id_token"))} {
		parts := strings.Split(t, ".")
		if len(parts) != 3 {
			continue
		}
		b, err := base64.RawURLEncoding.DecodeString(parts[1])
		var c struct {
			Sub string `json:"sub"`
		}
		if err == nil && json.Unmarshal(b, &c) == nil && c.Sub != "" {
			return truncate(c.Sub, 256)
		}
	}
	return ""
}

// consentError is what a call without a grant gets: a URL-mode elicitation
// of the gateway's consent link, as -32042 on a session (the client opens
// the link, and retries once told the elicitation completed) or, for a
// session-less client (2026-07-28), as an input request.
func (a *userAuth) consentError(ctx context.Context, u *upstream, principal string, ss *mcp.ServerSession) (*mcp.CallToolResult, error) {
	state := randomToken()
	c := consent{Upstream: u.spec.GetName(), Scope: grantScope(u), Principal: principal, Verifier: oauth2.GenerateVerifier(), ElicitationID: randomToken(),
		LoginVerifier: oauth2.GenerateVerifier(), Nonce: randomToken()}
	if err := a.store.Put(ctx, kindConsent, "", state, c, consentTTL); err != nil {
		return nil, fmt.Errorf("keeping the consent: %w", err)
	}
	ep := &mcp.ElicitParams{Mode: "url", URL: a.p.cfg.PublicURL + consentPath + state, ElicitationID: c.ElicitationID,
		Message: fmt.Sprintf("Authorize the gateway to call %s as you. The link works once, for %d minutes.", u.spec.GetName(), int(consentTTL.Minutes()))}
	if ss == nil || ss.ID() == "" {
		return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{consentInput: ep}}, nil
	}
	a.mu.Lock()
	a.waiting[c.ElicitationID] = ss
	a.mu.Unlock()
	time.AfterFunc(consentTTL, func() {
		a.mu.Lock()
		delete(a.waiting, c.ElicitationID)
		a.mu.Unlock()
	})
	return nil, mcp.URLElicitationRequiredError([]*mcp.ElicitParams{ep})
}

// consentInput is the key of the consent request among a call's input requests.
const consentInput = "portcullis_consent"

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Paths the gateway serves for consent and connections.
const (
	consentPath     = "/oauth/consent/"
	callbackPath    = "/oauth/callback"
	connectionsPath = "/oauth/connections"
)

// serveConsent shows whom a consent link is for and which upstream it
// authorizes (GET); confirmed (POST), it sends the person's browser to the
// upstream's authorization server. The link is unguessable, works for one
// authorization, and expires.
func (a *userAuth) serveConsent(w http.ResponseWriter, r *http.Request) {
	state := r.PathValue("state")
	c, ok := a.consentOf(r, state)
	if !ok {
		consentPage(w, http.StatusNotFound, "This consent link is unknown or expired.", "Call the tool again for a new one.")
		return
	}
	u := a.linkUpstream(w, &c)
	if u == nil {
		return
	}
	if !a.sameBrowser(r, &c) {
		// Who opened the link? The person signs in at the identity
		// provider first (MCP elicitation: the server MUST verify that the
		// user completing the flow is the one it was made for).
		a.startLogin(w, r, state, &c)
		return
	}
	if r.Method != http.MethodPost {
		page(w, http.StatusOK, confirmTmpl, map[string]string{"Upstream": c.Upstream, "URL": u.spec.GetUrl(), "Principal": c.Principal})
		return
	}
	cfg, _, err := a.config(r.Context(), u)
	if err != nil {
		a.p.log.Warn("consent: no authorization server", "upstream", c.Upstream, "err", err)
		consentPage(w, http.StatusBadGateway, "The gateway cannot reach the upstream's authorization server.", err.Error())
		return
	}
	http.Redirect(w, r, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(c.Verifier), oauth2.SetAuthURLParam("resource", resourceOf(u))), http.StatusSeeOther)
}

// consentOf reads the consent a link, sign-in or callback names by its
// state, with the state and any code bounded before the lookup.
func (a *userAuth) consentOf(r *http.Request, state string) (consent, bool) {
	var c consent
	if len(state) > 64 || len(r.URL.Query().Get("code")) > maxTokenBytes {
		return c, false
	}
	ok, err := a.store.Get(r.Context(), kindConsent, "", state, &c)
	if err != nil {
		a.p.log.Warn("consent: reading the link", "err", err)
	}
	return c, ok && err == nil
}

// linkUpstream is the upstream a consent is for, as it was when the link
// was made; otherwise it answers the browser and returns nil.
func (a *userAuth) linkUpstream(w http.ResponseWriter, c *consent) *upstream {
	u := a.p.upstream(c.Upstream)
	if u == nil || !oauthUser(u) || grantScope(u) != c.Scope {
		consentPage(w, http.StatusNotFound, "This upstream changed or no longer takes personal authorization.", "Call the tool again for a new consent link.")
		return nil
	}
	return u
}

// serveCallback finishes a consent: the code is exchanged, the grant kept,
// and the client session told the elicitation completed.
func (a *userAuth) serveCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	c, ok := a.consentOf(r, state)
	if !ok {
		consentPage(w, http.StatusBadRequest, "This authorization is unknown or expired.", "Call the tool again for a new consent link.")
		return
	}
	_ = a.store.Delete(r.Context(), kindConsent, "", state) // a link works once
	if !a.sameBrowser(r, &c) {
		consentPage(w, http.StatusForbidden, "This authorization did not start in this browser.", "Open the consent link your client gave you, and sign in there.")
		return
	}
	if e := q.Get("error"); e != "" {
		consentPage(w, http.StatusForbidden, "The authorization server did not authorize the gateway.", truncate(e+": "+q.Get("error_description"), 300))
		return
	}
	u := a.linkUpstream(w, &c)
	if u == nil {
		return
	}
	cfg, asm, err := a.config(r.Context(), u)
	if err != nil {
		consentPage(w, http.StatusBadGateway, "The gateway cannot reach the upstream's authorization server.", err.Error())
		return
	}
	if iss := q.Get("iss"); iss != "" && strings.TrimSuffix(iss, "/") != strings.TrimSuffix(asm.Issuer, "/") { // RFC 9207
		consentPage(w, http.StatusBadRequest, "The authorization came from another server than the one asked.", "")
		return
	}
	tok, err := cfg.Exchange(a.httpContext(r.Context()), q.Get("code"), oauth2.VerifierOption(c.Verifier), oauth2.SetAuthURLParam("resource", resourceOf(u)))
	if err != nil {
		consentPage(w, http.StatusBadGateway, "The authorization server refused the code.", truncate(err.Error(), 300))
		return
	}
	g := grant{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry, Subject: subjectOf(tok), ClientID: cfg.ClientID, Created: time.Now()}
	ttl := grantTTL
	if g.RefreshToken == "" {
		ttl = time.Until(expiryOr(g.Expiry))
	}
	if err := a.store.Put(r.Context(), kindGrant, c.Scope, c.Principal, g, ttl); err != nil {
		consentPage(w, http.StatusInternalServerError, "The gateway could not keep the authorization.", err.Error())
		return
	}
	a.forget(c.Scope, c.Principal)
	a.event(methodConnect, c.Upstream, c.Principal, g.Subject, "")
	a.p.log.Info("upstream authorized", "upstream", c.Upstream, "principal", c.Principal, "subject", g.Subject)
	a.mu.Lock()
	ss := a.waiting[c.ElicitationID]
	delete(a.waiting, c.ElicitationID)
	a.mu.Unlock()
	if ss != nil {
		_ = ss.NotifyElicitationComplete(r.Context(), &mcp.ElicitationCompleteParams{ElicitationID: c.ElicitationID})
	}
	consentPage(w, http.StatusOK, "Connected: the gateway now calls "+c.Upstream+" as you.", "You can close this page and return to your client.")
}

// connection is one upstream a principal authorized, as /oauth/connections lists it.
type connection struct {
	Upstream string    `json:"upstream"`
	Subject  string    `json:"subject,omitempty"`
	Created  time.Time `json:"created"`
}

// serveConnections lists (GET) or removes (DELETE …/{upstream}) the caller's
// own grants; the caller authenticates as to the MCP endpoint.
func (a *userAuth) serveConnections(w http.ResponseWriter, r *http.Request) {
	ti := auth.TokenInfoFromContext(r.Context())
	if ti == nil || ti.UserID == "" {
		http.Error(w, "authenticate as you do to the gateway's MCP endpoint", http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodDelete {
		name := r.PathValue("upstream")
		u := a.p.upstream(name)
		if u == nil || !oauthUser(u) {
			http.Error(w, fmt.Sprintf("no upstream %q with personal authorization on this gateway", truncate(name, 64)), http.StatusNotFound)
			return
		}
		if err := a.store.Delete(r.Context(), kindGrant, grantScope(u), ti.UserID); err != nil {
			http.Error(w, "removing the grant: "+err.Error(), http.StatusInternalServerError)
			return
		}
		a.forget(grantScope(u), ti.UserID)
		a.closeSessions(name, ti.UserID)
		a.event(methodDisconnect, name, ti.UserID, "", "disconnected by the person")
		a.p.log.Info("upstream disconnected by its person", "upstream", name, "principal", ti.UserID)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	out := []connection{}
	for _, u := range a.p.upstreamList() {
		if !oauthUser(u) {
			continue
		}
		var g grant
		if ok, err := a.store.Get(r.Context(), kindGrant, grantScope(u), ti.UserID, &g); err == nil && ok {
			out = append(out, connection{Upstream: u.spec.GetName(), Subject: g.Subject, Created: g.Created})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"principal": ti.UserID, "connections": out})
}

// closeSessions ends the principal's open upstream sessions with the
// upstream, so a disconnect takes effect on the next request.
func (a *userAuth) closeSessions(upstream, principal string) {
	a.p.links.Range(func(_, v any) bool {
		l := v.(*link)
		l.mu.Lock()
		var c *upConn
		if l.principal == principal {
			c = l.ups[upstream]
			delete(l.ups, upstream)
		}
		l.mu.Unlock()
		if c != nil {
			go c.close()
		}
		return true
	})
	if u := a.p.upstream(upstream); u != nil {
		u.pool.closePrincipal(principal)
	}
}

var consentTmpl = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Portcullis</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#0f172a}</style></head>
<body><h1>{{.Title}}</h1>{{if .Detail}}<p>{{.Detail}}</p>{{end}}</body></html>`))

var confirmTmpl = template.Must(template.New("confirm").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Portcullis</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#0f172a}
button{padding:.6rem 1.2rem;font-weight:600}</style></head>
<body><h1>Authorize {{.Upstream}}</h1>
<p>Your MCP client, signed in to the gateway as <b>{{.Principal}}</b>, asks that the gateway call
<b>{{.Upstream}}</b> ({{.URL}}) as you. Continue to sign in there and allow it.</p>
<p>If you did not ask for this, close this page: whoever sent you the link would act with your account.</p>
<form method="post"><button type="submit" data-testid="consent-continue">Continue</button></form></body></html>`))

func consentPage(w http.ResponseWriter, status int, title, detail string) {
	page(w, status, consentTmpl, map[string]string{"Title": title, "Detail": detail})
}

// page writes one of the consent flow's pages: never cached, never framed,
// never sending its URL (the link's state) on as a referrer.
func page(w http.ResponseWriter, status int, t *template.Template, data map[string]string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = t.Execute(w, data)
}

// userTransport adds the principal's token to each request to an upstream
// in a per-person mode; a 401 drops the cached token, so the next request
// refreshes it.
type userTransport struct {
	base      http.RoundTripper
	a         *userAuth
	u         *upstream
	principal string
}

func (t *userTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ct, err := t.a.token(req.Context(), t.u, t.principal)
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+ct.token)
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		t.a.forget(grantScope(t.u), t.principal)
	}
	return resp, err
}

// principalKey carries the principal of the client request being served.
type principalKey struct{}

func withPrincipal(ctx context.Context, principal string) context.Context {
	if principal == "" {
		return ctx
	}
	return context.WithValue(ctx, principalKey{}, principal)
}

func principalFrom(ctx context.Context) string {
	s, _ := ctx.Value(principalKey{}).(string)
	return s
}

// personal gets the caller's token for u before a call: on success it
// records whom the upstream sees and returns nothing; without a grant it
// returns the consent elicitation; otherwise a refusal.
func (p *Proxy) personal(ctx context.Context, req *mcp.CallToolRequest, u *upstream, ev *agentv1.CallEvent) (*mcp.CallToolResult, error) {
	if p.users == nil {
		ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, "the upstream acts as each person, and this gateway keeps no tokens"
		return refusal("%s", ev.Reason), nil
	}
	ct, err := p.users.token(ctx, u, ev.Principal)
	if err == nil {
		ev.UpstreamIdentity = ct.subject
		delete(req.Params.InputResponses, consentInput) // the answer to the gateway's consent request is not the upstream's
		return nil, nil
	}
	var nc needConsent
	if errors.As(err, &nc) && !strings.HasPrefix(ev.Principal, "user:") {
		ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, "the upstream acts as each person: authenticate to the gateway with a token from the identity provider, not a client key"
		return refusal("%s", ev.Reason), nil
	}
	if errors.As(err, &nc) {
		ev.Reason = "the person has not authorized the gateway at the upstream yet: consent link sent"
		return p.users.consentError(ctx, u, ev.Principal, req.Session)
	}
	ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, truncate(err.Error(), 512)
	return refusal("%s", err), nil
}

// Events of people's grants, which the control plane keeps as connections.
const (
	methodConnect    = "oauth/connect"
	methodDisconnect = "oauth/disconnect"
)

func (a *userAuth) event(method, upstream, principal, identity, reason string) {
	a.p.cfg.Telemetry.Add(&agentv1.CallEvent{Id: newEventID(), Time: timestamppb.Now(), Principal: principal, Upstream: upstream,
		Method: method, Decision: agentv1.Decision_DECISION_ALLOW, Reason: reason, UpstreamIdentity: identity})
}

// revoke applies a bundle's revocations: a person's grant made at or
// before an admin revoked it is deleted, and their sessions with the
// upstream closed. Each revocation is applied once.
func (a *userAuth) revoke(ctx context.Context, revs []*agentv1.GrantRevocation) {
	for _, r := range revs {
		u := a.p.upstream(r.GetUpstream())
		if u == nil || !oauthUser(u) || r.GetPrincipal() == "" || !r.GetRevokedAt().IsValid() {
			continue
		}
		scope, principal, at := grantScope(u), r.GetPrincipal(), r.GetRevokedAt().AsTime()
		key := grantKey(scope, principal)
		a.mu.Lock()
		done := a.revoked[key]
		a.mu.Unlock()
		if !at.After(done) {
			continue
		}
		var g grant
		ok, err := a.store.Get(ctx, kindGrant, scope, principal, &g)
		if err != nil {
			a.p.log.Warn("applying a revocation", "upstream", u.spec.GetName(), "principal", principal, "err", err)
			continue // tried again with the next bundle
		}
		if ok && !g.Created.After(at) {
			if err := a.store.Delete(ctx, kindGrant, scope, principal); err != nil {
				a.p.log.Warn("applying a revocation", "upstream", u.spec.GetName(), "principal", principal, "err", err)
				continue
			}
			a.forget(scope, principal)
			a.closeSessions(u.spec.GetName(), principal)
			a.event(methodDisconnect, u.spec.GetName(), principal, g.Subject, "revoked by an admin")
			a.p.log.Info("upstream grant revoked by an admin", "upstream", u.spec.GetName(), "principal", principal)
		}
		a.mu.Lock()
		a.revoked[key] = at
		a.mu.Unlock()
	}
}

// Verifying who opens a consent link: the gateway signs the person in at
// the identity provider its clients authenticate with (as an OpenID
// Connect client of its own, --login-client-id), compares the subject with
// the principal the link was made for, and binds the link to that browser
// with a cookie; continuing to the upstream and the callback need it.

// LoginClient is the gateway's OpenID Connect client at the identity
// provider its clients authenticate with, for verifying who opens a
// consent link.
type LoginClient struct {
	ID, Secret string
}

const (
	loginPath     = "/oauth/login"
	consentCookie = "portcullis_consent"
)

// sameBrowser reports whether the request comes from the browser in which
// the person proved to be the link's principal.
func (a *userAuth) sameBrowser(r *http.Request, c *consent) bool {
	ck, err := r.Cookie(consentCookie)
	if err != nil || c.Browser == "" || len(ck.Value) > 64 {
		return false
	}
	sum := sha256.Sum256([]byte(ck.Value))
	return subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(c.Browser)) == 1
}

// loginConfig is the gateway's OpenID Connect client at the clients'
// identity provider, if its operator configured one and the bundle names
// the provider.
func (a *userAuth) loginConfig() (*oauth2.Config, *oidcIssuer, error) {
	lc := a.p.cfg.Login
	pol := a.p.pol.Load()
	if lc.ID == "" || pol == nil || pol.oidcIssuer == "" {
		return nil, nil, errors.New("the gateway cannot verify who opens a consent link: its operator sets --login-client-id (an OpenID Connect client at the identity provider its clients authenticate with)")
	}
	iss, err := a.p.oidcIssuer(pol.oidcIssuer) // the provider that verifies clients' tokens
	if err != nil {
		return nil, nil, err
	}
	cfg := &oauth2.Config{ClientID: lc.ID, ClientSecret: lc.Secret, Endpoint: iss.prov.Endpoint(), RedirectURL: a.p.cfg.PublicURL + loginPath,
		Scopes: []string{oidc.ScopeOpenID}}
	return cfg, iss, nil
}

// startLogin sends the browser to the identity provider to sign in.
func (a *userAuth) startLogin(w http.ResponseWriter, r *http.Request, state string, c *consent) {
	cfg, _, err := a.loginConfig()
	if err != nil {
		consentPage(w, http.StatusServiceUnavailable, "The gateway cannot verify who you are.", err.Error())
		return
	}
	http.Redirect(w, r, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(c.LoginVerifier), oidc.Nonce(c.Nonce)), http.StatusSeeOther)
}

// serveLogin finishes the sign-in: the person must be the link's
// principal; the browser gets the cookie that continues the consent.
func (a *userAuth) serveLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	c, ok := a.consentOf(r, state)
	if !ok {
		consentPage(w, http.StatusBadRequest, "This sign-in is unknown or expired.", "Call the tool again for a new consent link.")
		return
	}
	if e := q.Get("error"); e != "" {
		consentPage(w, http.StatusForbidden, "The identity provider did not sign you in.", truncate(e+": "+q.Get("error_description"), 300))
		return
	}
	cfg, iss, err := a.loginConfig()
	if err != nil {
		consentPage(w, http.StatusServiceUnavailable, "The gateway cannot verify who you are.", err.Error())
		return
	}
	tok, err := cfg.Exchange(a.httpContext(r.Context()), q.Get("code"), oauth2.VerifierOption(c.LoginVerifier))
	var idt *oidc.IDToken
	if err == nil {
		raw, _ := tok.Extra("id_token").(string)
		// The shared verifier leaves the audience to its caller: an ID
		// token for the gateway's login client, of this sign-in.
		if idt, err = iss.jwt.Verify(r.Context(), raw); err == nil && !slices.Contains(idt.Audience, cfg.ClientID) {
			err = fmt.Errorf("the ID token is for %v, not the gateway's login client", idt.Audience)
		} else if err == nil && idt.Nonce != c.Nonce {
			err = errors.New("the ID token's nonce is not this sign-in's")
		}
	}
	if err != nil {
		consentPage(w, http.StatusForbidden, "The gateway could not verify your sign-in.", truncate(err.Error(), 300))
		return
	}
	if "user:"+idt.Subject != c.Principal {
		// Someone else's link: the phishing the MCP specification warns of.
		_ = a.store.Delete(r.Context(), kindConsent, "", state)
		a.p.log.Warn("consent link opened by another person", "upstream", c.Upstream, "principal", c.Principal, "opened_by", "user:"+idt.Subject)
		consentPage(w, http.StatusForbidden, "This consent link was made for another person.", "Nobody was connected. Never open a consent link someone sent you; your own client gives you yours.")
		return
	}
	cookie := randomToken()
	sum := sha256.Sum256([]byte(cookie))
	c.Browser = hex.EncodeToString(sum[:])
	if err := a.store.Put(r.Context(), kindConsent, "", state, c, consentTTL); err != nil {
		consentPage(w, http.StatusInternalServerError, "The gateway could not keep the sign-in.", err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{Name: consentCookie, Value: cookie, Path: "/oauth/", MaxAge: int(consentTTL.Seconds()),
		HttpOnly: true, Secure: strings.HasPrefix(a.p.cfg.PublicURL, "https://"), SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, consentPath+state, http.StatusSeeOther)
}
