// Package devidp is an embedded OpenID Provider for `portcullis dev` and the
// tests, built on zitadel/oidc's op package: real discovery, real RS256-signed
// ID tokens, authorization code flow with PKCE, and a password login page for
// a few seeded users. It is not for production: point --oidc-issuer at your
// identity provider there.
package devidp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// User is a seeded account.
type User struct {
	Email, Password, Name string
}

// Config configures the provider.
type Config struct {
	Listen       string // default 127.0.0.1:0
	ClientID     string
	ClientSecret string
	RedirectURIs []string
	Users        []User
	// Services get JWT access tokens with the client credentials grant.
	Services []Service
	// Clients act for people (authorization code, refresh, token exchange).
	Clients []Client
	Logger  *slog.Logger
}

// IdP is a running provider.
type IdP struct {
	issuer string
	srv    *http.Server
	ln     net.Listener
}

type userStore map[string]*storage.User // by username (the email)

func (u userStore) GetUserByID(id string) *storage.User {
	for _, x := range u {
		if x.ID == id {
			return x
		}
	}
	return nil
}
func (u userStore) GetUserByUsername(name string) *storage.User { return u[strings.ToLower(name)] }
func (u userStore) ExampleClientID() string                     { return "" }

// Start listens and serves the provider until ctx ends or Close is called.
func Start(ctx context.Context, cfg Config) (*IdP, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" || len(cfg.RedirectURIs) == 0 || len(cfg.Users) == 0 {
		return nil, errors.New("devidp: client id, secret, redirect URIs and at least one user are required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("devidp: listening on %s: %w", cfg.Listen, err)
	}
	issuer := "http://" + ln.Addr().String()
	users := userStore{}
	for i, u := range cfg.Users {
		first, last, _ := strings.Cut(u.Name, " ")
		users[strings.ToLower(u.Email)] = &storage.User{
			ID: fmt.Sprintf("dev-user-%d", i+1), Username: strings.ToLower(u.Email), Password: u.Password,
			FirstName: first, LastName: last, Email: strings.ToLower(u.Email), EmailVerified: true,
			PreferredLanguage: language.English,
		}
	}
	client := storage.WebClient(cfg.ClientID, cfg.ClientSecret, cfg.RedirectURIs...)
	st := &store{Storage: storage.NewStorageWithClients(users, map[string]*storage.Client{cfg.ClientID: client}), services: map[string]Service{}}
	for _, svc := range cfg.Services {
		st.services[svc.ID] = svc
	}
	st.clients = map[string]Client{}
	for _, c := range cfg.Clients {
		st.clients[c.ID] = c
	}
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		ln.Close()
		return nil, err
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:                key,
		DefaultLogoutRedirectURI: "/",
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		SupportedUILocales:       []language.Tag{language.English},
	}, st, op.StaticIssuer(issuer), op.WithAllowInsecure(), op.WithLogger(cfg.Logger.With("component", "devidp")))
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("devidp: %w", err)
	}
	mux := http.NewServeMux()
	l := &login{store: st.Storage, callback: op.AuthCallbackURL(provider)}
	mux.HandleFunc("GET /login/username", l.form)
	mux.HandleFunc("POST /login/username", l.check)
	mux.Handle("/", withResource(provider))
	idp := &IdP{issuer: issuer, ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = idp.srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		idp.Close()
	}()
	return idp, nil
}

// Issuer is the provider's issuer URL.
func (i *IdP) Issuer() string { return i.issuer }

// Close stops the provider.
func (i *IdP) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = i.srv.Shutdown(ctx)
}

type login struct {
	store    *storage.Storage
	callback func(context.Context, string) string
}

var page = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dev identity provider</title>
<style>body{font-family:system-ui,sans-serif;background:#0f172a;color:#e2e8f0;display:grid;place-items:center;min-height:100vh;margin:0}
form{background:#1e293b;padding:2rem;border-radius:12px;width:320px;display:grid;gap:.8rem}
input{padding:.6rem;border-radius:6px;border:1px solid #475569;background:#0f172a;color:#e2e8f0}
button{padding:.7rem;border:0;border-radius:6px;background:#6366f1;color:white;font-weight:600;cursor:pointer}
.err{color:#fca5a5}.hint{color:#94a3b8;font-size:.85rem}</style></head>
<body><form method="post" action="/login/username">
<h2>Portcullis dev login</h2>
<p class="hint">Embedded OpenID Provider for development. Not for production.</p>
{{if .Error}}<p class="err" data-testid="login-error">{{.Error}}</p>{{end}}
<input type="hidden" name="id" value="{{.ID}}">
<label>Email <input name="username" type="email" autocomplete="username" data-testid="idp-username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" data-testid="idp-password" required></label>
<button type="submit" data-testid="idp-submit">Sign in</button>
</form></body></html>`))

func (l *login) form(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = page.Execute(w, map[string]string{"ID": r.URL.Query().Get("authRequestID")})
}

func (l *login) check(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	id := r.PostFormValue("id")
	if err := l.store.CheckUsernamePassword(r.PostFormValue("username"), r.PostFormValue("password"), id); err != nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_ = page.Execute(w, map[string]string{"ID": id, "Error": "Wrong email or password."})
		return
	}
	http.Redirect(w, r, l.callback(r.Context(), id), http.StatusFound)
}
