// Package web serves the console: OIDC login, sessions, CSRF, security
// headers, and pages rendered with the templ components in ui/. Handlers call
// the same domain services as the admin API and map their errors to HTTP
// statuses; they hold no business rules.
package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/access"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/adminapi"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/catalog"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/change"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/identity"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/inventory"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/telemetry"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/privacy"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	"github.com/portcullis-mcp/portcullis/ui"
)

// Config wires the console.
type Config struct {
	DB        *ent.Client
	IDs       *identity.Service
	Tenants   *tenant.Service
	Inventory *inventory.Service
	Changes   *change.Service
	Access    *access.Service
	Telemetry *telemetry.Service
	Catalog   *catalog.Service
	// EnrollmentToken formats an enrollment token; AgentEndpoint is what
	// agents dial (shown in the enrollment command).
	EnrollmentToken func(ctx context.Context, tenantID, gatewayID uuid.UUID, ttl time.Duration, uses int) (string, error)
	AgentEndpoint   string
	// PublicURL is where browsers reach the console, e.g.
	// https://portcullis.example.com; it sets the OIDC redirect URL and,
	// when https, Secure __Host- cookies.
	PublicURL string
	OIDC      OIDCConfig
	Logger    *slog.Logger
}

// Server is the console.
type Server struct {
	cfg    Config
	log    *slog.Logger
	oidc   *oidcClient
	secure bool
}

// New checks cfg and returns the console.
func New(cfg Config) (*Server, error) {
	if cfg.DB == nil || cfg.IDs == nil || cfg.Tenants == nil || cfg.Inventory == nil || cfg.Changes == nil || cfg.Access == nil || cfg.Telemetry == nil || cfg.Catalog == nil || cfg.EnrollmentToken == nil {
		return nil, errors.New("web.New: DB, IDs, Tenants, Inventory, Changes, Access, Telemetry, Catalog and EnrollmentToken are required")
	}
	if cfg.OIDC.Issuer == "" || cfg.OIDC.ClientID == "" {
		return nil, errors.New("the console needs an OIDC issuer and client id (--oidc-issuer, --oidc-client-id)")
	}
	pu, err := url.Parse(cfg.PublicURL)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return nil, errors.New("--public-url must be an absolute http(s) URL, e.g. https://portcullis.example.com")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	base := strings.TrimSuffix(cfg.PublicURL, "/")
	return &Server{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "web"),
		oidc:   &oidcClient{cfg: cfg.OIDC, redirectURL: base + "/auth/callback"},
		secure: pu.Scheme == "https",
	}, nil
}

// Mount registers the console's routes on mux.
func (s *Server) Mount(mux *http.ServeMux) {
	static, _ := fs.Sub(ui.Static, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheForever(http.FileServerFS(static))))
	mux.HandleFunc("GET /login", s.signIn)
	mux.HandleFunc("GET /login/start", s.login)
	mux.HandleFunc("GET /auth/callback", s.callback)
	mux.HandleFunc("POST /logout", s.logout)

	// Pages that need a user but not a tenant.
	mux.Handle("GET /tenants", s.user(s.tenantsPage))
	mux.Handle("POST /tenants", s.user(s.createTenant))
	mux.Handle("POST /tenants/switch", s.user(s.switchTenant))

	// Pages inside the current tenant.
	mux.Handle("GET /{$}", s.tenant(s.dashboard))
	mux.Handle("GET /members", s.tenant(s.membersPage))
	mux.Handle("POST /members/invite", s.tenant(s.invite))
	mux.Handle("POST /members/{id}/role", s.tenant(s.setRole))
	mux.Handle("POST /members/{id}/remove", s.tenant(s.removeMember))
	mux.Handle("GET /gateways", s.tenant(s.gatewaysPage))
	mux.Handle("POST /gateways", s.tenant(s.createGateway))
	mux.Handle("GET /gateways/{id}", s.tenant(s.gatewayPage))
	mux.Handle("GET /gateways/{id}/agents", s.tenant(s.agentsPartial))
	mux.Handle("POST /gateways/{id}/tokens", s.tenant(s.createToken))
	mux.Handle("POST /gateways/{id}/tokens/{token}/revoke", s.tenant(s.revokeToken))
	mux.Handle("POST /gateways/{id}/rename", s.tenant(s.renameGateway))
	mux.Handle("POST /gateways/{id}/delete", s.tenant(s.deleteGateway))
	mux.Handle("POST /gateways/{id}/agents/revoke", s.tenant(s.revokeAgent))
	mux.Handle("GET /upstreams", s.tenant(s.upstreamsPage))
	mux.Handle("POST /upstreams", s.tenant(s.createUpstream))
	mux.Handle("GET /upstreams/{id}", s.tenant(s.upstreamPage))
	mux.Handle("POST /upstreams/{id}", s.tenant(s.updateUpstream))
	mux.Handle("POST /upstreams/{id}/delete", s.tenant(s.deleteUpstream))
	mux.Handle("GET /catalog", s.tenant(s.catalogPage))
	mux.Handle("POST /catalog", s.tenantLimit(catalog.MaxServerJSON+64<<10, s.importCatalog))
	mux.Handle("POST /catalog/{id}/decide", s.tenant(s.decideCatalog))
	mux.Handle("POST /catalog/{id}/delete", s.tenant(s.deleteCatalog))
	mux.Handle("GET /connections", s.tenant(s.connectionsPage))
	mux.Handle("POST /connections/{id}/revoke", s.tenant(s.revokeConnection))
	mux.Handle("GET /virtual-servers", s.tenant(s.virtualServersPage))
	mux.Handle("POST /virtual-servers", s.tenant(s.createVirtualServer))
	mux.Handle("GET /virtual-servers/{id}", s.tenant(s.virtualServerPage))
	mux.Handle("POST /virtual-servers/{id}", s.tenant(s.updateVirtualServer))
	mux.Handle("POST /virtual-servers/{id}/delete", s.tenant(s.deleteVirtualServer))
	mux.Handle("GET /tools", s.tenant(s.toolsPage))
	mux.Handle("GET /tools/{id}", s.tenant(s.toolPage))
	mux.Handle("POST /tools/{id}/propose", s.tenant(s.proposeChange))
	mux.Handle("POST /tools/{id}/labels", s.tenant(s.setToolLabels))
	mux.Handle("POST /tools/{id}/pin", s.tenant(s.pinTool))
	mux.Handle("POST /tools/{id}/unpin", s.tenant(s.unpinTool))
	mux.Handle("GET /api-keys", s.tenant(s.apiKeysPage))
	mux.Handle("POST /api-keys", s.tenant(s.createAPIKey))
	mux.Handle("POST /api-keys/{id}/revoke", s.tenant(s.revokeAPIKey))
	mux.Handle("GET /audit", s.tenant(s.auditPage))
	mux.Handle("GET /telemetry", s.tenant(s.telemetryPage))
	mux.Handle("GET /changes", s.tenant(s.changesPage))
	mux.Handle("GET /changes/{id}", s.tenant(s.changePage))
	mux.Handle("GET /changes/{id}/agents", s.tenant(s.changeAgentsPartial))
	mux.Handle("POST /changes/{id}/decide", s.tenant(s.decideChange))
	mux.Handle("GET /access", s.tenant(s.accessPage))
	mux.Handle("POST /access/keys", s.tenant(s.createClientKey))
	mux.Handle("POST /access/idp", s.tenant(s.setClientIdP))
	mux.Handle("POST /access/keys/{id}/revoke", s.tenant(s.revokeClientKey))
	mux.Handle("POST /access/gateways/{id}/auth", s.tenant(s.setClientAuth))
	mux.Handle("POST /access/gateways/{id}/rules", s.tenant(s.createRule))
	mux.Handle("POST /access/gateways/{id}/limits", s.tenant(s.setRateLimits))
	mux.Handle("POST /access/rules/{id}/delete", s.tenant(s.deleteRule))
	mux.Handle("GET /settings", s.tenant(s.settingsPage))
	mux.Handle("POST /settings/approvals", s.tenant(s.setApprovals))
	mux.Handle("POST /settings/results", s.tenant(s.setResultAction))
	mux.Handle("POST /settings/catalog", s.tenant(s.setCatalogOnly))
	mux.Handle("GET /settings/pins.json", s.tenant(s.exportPins))
	mux.Handle("POST /settings/pins", s.tenantLimit(change.MaxManifestBytes+64<<10, s.importPins))
}

func cacheForever(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// SecurityHeaders sets CSP and friends on every response, and refuses
// cross-origin unsafe requests (Fetch metadata / Origin checks).
func SecurityHeaders(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		cop.Handler(next).ServeHTTP(w, r)
	})
}

func (s *Server) cookieName() string {
	if s.secure {
		return adminapi.SessionCookie
	}
	return adminapi.DevSessionCookie
}

func (s *Server) setSessionCookie(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: token, Path: "/", HttpOnly: true, Secure: s.secure,
		SameSite: http.SameSiteLaxMode, MaxAge: int((12 * time.Hour).Seconds())})
}

// request is what a handler knows about the caller.
type request struct {
	session *identity.Session
	user    *ent.User
	tenants []ui.TenantRef
	viewer  viewer.Viewer // zero outside a tenant
	pending int           // pending change requests in the tenant
}

type handler func(w http.ResponseWriter, r *http.Request, rq *request)

// user authenticates the session and, for unsafe methods, the CSRF token.
func (s *Server) user(h handler) http.Handler { return s.userLimit(64<<10, h) }

// userLimit is user with a request body limit other than 64 KiB.
func (s *Server) userLimit(limit int64, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		se, err := s.cfg.IDs.Session(r.Context(), adminapi.SessionToken(r.Header))
		if err != nil {
			if r.Header.Get("HX-Request") != "" {
				w.Header().Set("HX-Redirect", "/login") // htmx follows this with a full page load
			} else if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login", http.StatusFound)
				return
			}
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			tok := r.Header.Get("X-CSRF-Token")
			if tok == "" {
				tok = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(tok), []byte(se.CSRFToken)) != 1 {
				http.Error(w, "missing or wrong CSRF token: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		u, err := s.cfg.IDs.User(r.Context(), se.UserID)
		if err != nil {
			s.renderError(w, r, nil, http.StatusInternalServerError, "Your account could not be read.")
			return
		}
		ms, err := s.cfg.IDs.Memberships(r.Context(), se.UserID)
		if err != nil {
			s.renderError(w, r, nil, http.StatusInternalServerError, "Your memberships could not be read.")
			return
		}
		rq := &request{session: se, user: u}
		for _, m := range ms {
			rq.tenants = append(rq.tenants, ui.TenantRef{ID: m.TenantID.String(), Slug: m.Slug, Name: m.Name, Role: m.Role.String()})
		}
		h(w, r, rq)
	})
}

// tenant additionally resolves the session's tenant and puts the viewer in
// the request context; without one it sends the user to pick one.
func (s *Server) tenant(h handler) http.Handler { return s.tenantLimit(64<<10, h) }

// tenantLimit is tenant with a request body limit other than 64 KiB.
func (s *Server) tenantLimit(limit int64, h handler) http.Handler {
	return s.userLimit(limit, func(w http.ResponseWriter, r *http.Request, rq *request) {
		if rq.session.TenantID == uuid.Nil {
			http.Redirect(w, r, "/tenants", http.StatusSeeOther)
			return
		}
		v, err := s.cfg.IDs.UserViewer(r.Context(), rq.session.UserID, rq.session.TenantID)
		if err != nil { // removed from the tenant since
			http.Redirect(w, r, "/tenants", http.StatusSeeOther)
			return
		}
		rq.viewer = v
		ctx := viewer.NewContext(r.Context(), v)
		if rq.pending, err = s.cfg.Changes.Pending(ctx, v.TenantID); err != nil {
			s.fail(w, r, rq, err)
			return
		}
		h(w, r.WithContext(ctx), rq)
	})
}

func (s *Server) page(rq *request, title, active string) ui.Page {
	p := ui.Page{Title: title, Active: active, Tenants: rq.tenants}
	if rq.user != nil {
		p.UserEmail = rq.user.Email
	}
	if rq.session != nil {
		p.CSRF = rq.session.CSRFToken
	}
	if rq.viewer.TenantID != uuid.Nil {
		for _, t := range rq.tenants {
			if t.ID == rq.viewer.TenantID.String() {
				p.Tenant = t
			}
		}
		p.Role = rq.viewer.Role.String()
		p.CanAdmin = rq.viewer.Can(viewer.RoleAdmin)
		p.CanApprove = rq.viewer.Can(viewer.RoleApprover)
		p.PendingChanges = rq.pending
	}
	return p
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := c.Render(r.Context(), w); err != nil {
		s.log.Error("rendering page", "path", r.URL.Path, "err", err)
	}
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, rq *request, status int, msg string) {
	p := ui.Page{Title: http.StatusText(status)}
	if rq != nil {
		p = s.page(rq, http.StatusText(status), "")
	}
	s.render(w, r, status, ui.ErrorPage(ui.Error{Page: p, Status: status, Message: msg}))
}

// fail maps a domain error to a status and an error page.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	status, msg := statusOf(err)
	if status == http.StatusInternalServerError {
		s.log.Error("console request failed", "path", r.URL.Path, "err", err)
	}
	s.renderError(w, r, rq, status, msg)
}

func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, authz.ErrNotFound):
		return http.StatusNotFound, "Not found in this tenant."
	case errors.Is(err, authz.ErrPermissionDenied), errors.Is(err, privacy.Deny):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, authz.ErrInvalid), errors.Is(err, authz.ErrConflict), errors.Is(err, authz.ErrPrecondition):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, authz.ErrUnauthenticated):
		return http.StatusUnauthorized, "Please sign in again."
	}
	return http.StatusInternalServerError, "Something went wrong; the error is in the control plane's log."
}

// formError re-renders a page with the error shown above it, or fails for
// errors that are not the user's input.
func (s *Server) formError(w http.ResponseWriter, r *http.Request, rq *request, err error, again func(msg string, status int)) {
	status, msg := statusOf(err)
	if status == http.StatusBadRequest {
		again(msg, status)
		return
	}
	s.fail(w, r, rq, err)
}

func pathID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return uuid.Nil, authz.ErrNotFound
	}
	return id, nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	tok := adminapi.SessionToken(r.Header)
	se, err := s.cfg.IDs.Session(r.Context(), tok)
	if err == nil && subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(se.CSRFToken)) == 1 {
		_ = s.cfg.IDs.EndSession(r.Context(), tok)
	}
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
