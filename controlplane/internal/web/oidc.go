package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/uuid"
	"golang.org/x/oauth2"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/identity"
)

// OIDCConfig names the identity provider admins log in with.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string
}

// oidcClient does discovery lazily, so the console starts even while the
// identity provider is down, and retries on the next login.
type oidcClient struct {
	cfg         OIDCConfig
	redirectURL string
	mu          sync.Mutex
	provider    *oidc.Provider
}

func (c *oidcClient) get(ctx context.Context) (*oidc.Provider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.provider != nil {
		return c.provider, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, c.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discovering the identity provider %s: %w", c.cfg.Issuer, err)
	}
	c.provider = p
	return p, nil
}

func (c *oidcClient) oauth(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID: c.cfg.ClientID, ClientSecret: c.cfg.ClientSecret, RedirectURL: c.redirectURL,
		Endpoint: p.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email", "profile"},
	}
}

// loginState rides in a short-lived HttpOnly cookie between /login and the
// callback: it binds the callback to the browser that started the login.
type loginState struct {
	State, Nonce, Verifier string
}

const loginCookie = "portcullis_login"

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	p, err := s.oidc.get(r.Context())
	if err != nil {
		s.log.Error("login unavailable", "err", err)
		s.renderError(w, r, nil, http.StatusServiceUnavailable, "The identity provider cannot be reached right now. Try again in a minute.")
		return
	}
	st := loginState{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier()}
	b, _ := json.Marshal(st)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: "/auth/callback",
		MaxAge: 600, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	url := s.oidc.oauth(p).AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier))
	http.Redirect(w, r, url, http.StatusFound)
}

func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string, err error) {
		s.log.Warn("login failed", "reason", msg, "err", err)
		s.renderError(w, r, nil, status, msg+" Start again from the sign-in page.")
	}
	c, err := r.Cookie(loginCookie)
	if err != nil {
		fail(http.StatusBadRequest, "This login has no state: it expired or was started in another browser.", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Path: "/auth/callback", MaxAge: -1, HttpOnly: true, Secure: s.secure})
	raw, err := base64.RawURLEncoding.DecodeString(c.Value)
	var st loginState
	if err != nil || json.Unmarshal(raw, &st) != nil || st.State == "" {
		fail(http.StatusBadRequest, "The login state is malformed.", err)
		return
	}
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		fail(http.StatusUnauthorized, "The identity provider refused the login ("+truncate(e, 100)+").", nil)
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		fail(http.StatusBadRequest, "The login state does not match.", nil)
		return
	}
	p, err := s.oidc.get(r.Context())
	if err != nil {
		fail(http.StatusServiceUnavailable, "The identity provider cannot be reached.", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	tok, err := s.oidc.oauth(p).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		fail(http.StatusUnauthorized, "The authorization code was refused.", err)
		return
	}
	rawID, ok := tok.Extra("id_token").(string)
	if !ok {
		fail(http.StatusUnauthorized, "The identity provider returned no ID token.", nil)
		return
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: s.oidc.cfg.ClientID}).Verify(ctx, rawID)
	if err != nil {
		fail(http.StatusUnauthorized, "The ID token did not verify.", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		fail(http.StatusUnauthorized, "The ID token's nonce does not match.", nil)
		return
	}
	var claims struct {
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
		Name          string `json:"name"`
	}
	if err := idt.Claims(&claims); err != nil {
		fail(http.StatusUnauthorized, "The ID token's claims are malformed.", err)
		return
	}
	if claims.Email == "" {
		// Some providers put profile claims only in the UserInfo response.
		ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			fail(http.StatusUnauthorized, "The identity provider's UserInfo endpoint failed.", err)
			return
		}
		if ui.Subject != idt.Subject {
			fail(http.StatusUnauthorized, "The UserInfo subject does not match the ID token.", nil)
			return
		}
		claims.Email, claims.EmailVerified = ui.Email, ui.EmailVerified
		if claims.Name == "" {
			var extra struct {
				Name string `json:"name"`
			}
			_ = ui.Claims(&extra)
			claims.Name = extra.Name
		}
	}
	email := claims.Email
	if !claims.EmailVerified {
		email = "" // an unverified email must not match invitations
	}
	u, err := s.cfg.IDs.Login(ctx, identity.Claims{Issuer: idt.Issuer, Subject: idt.Subject, Email: email, Name: claims.Name})
	if err != nil {
		fail(http.StatusInternalServerError, "Your account could not be set up.", err)
		return
	}
	ms, err := s.cfg.IDs.Memberships(ctx, u.ID)
	if err != nil {
		fail(http.StatusInternalServerError, "Your memberships could not be read.", err)
		return
	}
	tenant := uuid.Nil
	if len(ms) > 0 {
		tenant = ms[0].TenantID
	}
	token, err := s.cfg.IDs.CreateSession(ctx, u.ID, tenant)
	if err != nil {
		fail(http.StatusInternalServerError, "The session could not be created.", err)
		return
	}
	s.setSessionCookie(w, token)
	s.log.Info("user logged in", "user", u.ID, "email", u.Email)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return strings.ToValidUTF8(s, "")
}
