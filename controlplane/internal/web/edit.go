package web

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/schematype"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	"github.com/portcullis-mcp/portcullis/ui"
)

// Editing and deleting gateways, upstreams and virtual servers, and
// withdrawing enrollment tokens. Every action is the tenant service's (which
// checks the role and the tenant, and audits); these handlers read forms.

// confirmed is whether a destructive form's confirmation box was ticked.
// The browser requires it too; this is for anything that is not a browser.
func confirmed(r *http.Request) error {
	if r.PostFormValue("confirm") != "1" {
		return authz.Invalid("tick the confirmation box first")
	}
	return nil
}

func (s *Server) renameGateway(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		_, err = s.cfg.Tenants.RenameGateway(r.Context(), rq.viewer.TenantID, id, strings.TrimSpace(r.PostFormValue("name")))
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderGateway(w, r, rq, id, status, msg) })
		return
	}
	http.Redirect(w, r, "/gateways/"+id.String(), http.StatusSeeOther)
}

func (s *Server) deleteGateway(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		err = confirmed(r)
	}
	if err == nil {
		_, err = s.cfg.Tenants.DeleteGateway(r.Context(), rq.viewer.TenantID, id, r.PostFormValue("force") == "1")
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderGateway(w, r, rq, id, status, msg) })
		return
	}
	http.Redirect(w, r, "/gateways", http.StatusSeeOther)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, rq *request) {
	gw, err := pathID(r)
	var tok uuid.UUID
	if err == nil {
		if tok, err = uuid.Parse(r.PathValue("token")); err != nil {
			err = authz.ErrNotFound
		}
	}
	if err == nil {
		err = s.cfg.Tenants.RevokeEnrollmentToken(r.Context(), rq.viewer.TenantID, tok)
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderGateway(w, r, rq, gw, status, msg) })
		return
	}
	http.Redirect(w, r, "/gateways/"+gw.String(), http.StatusSeeOther)
}

func (s *Server) revokeAgent(w http.ResponseWriter, r *http.Request, rq *request) {
	gw, err := pathID(r)
	if err == nil {
		err = confirmed(r)
	}
	if err == nil {
		var agentID uuid.UUID
		if agentID, err = uuid.Parse(r.PostFormValue("agent")); err != nil {
			err = authz.Invalid("choose an agent")
		} else {
			err = s.cfg.Tenants.RevokeAgent(r.Context(), rq.viewer.TenantID, agentID)
		}
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderGateway(w, r, rq, gw, status, msg) })
		return
	}
	http.Redirect(w, r, "/gateways/"+gw.String(), http.StatusSeeOther)
}

// tokenVMs lists a gateway's enrollment tokens for the page.
func (s *Server) tokenVMs(r *http.Request, rq *request, gatewayID uuid.UUID) ([]ui.EnrollmentToken, error) {
	toks, err := s.cfg.Tenants.EnrollmentTokens(r.Context(), rq.viewer.TenantID, gatewayID)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]ui.EnrollmentToken, 0, len(toks))
	for _, t := range toks {
		state := "usable"
		switch {
		case t.Uses >= t.MaxUses:
			state = "used up"
		case !now.Before(t.ExpiresAt):
			state = "expired"
		}
		out = append(out, ui.EnrollmentToken{ID: t.ID.String(), Created: t.CreatedAt, Expires: t.ExpiresAt, Uses: t.Uses, MaxUses: t.MaxUses, State: state})
	}
	return out, nil
}

// --- upstreams

// upstreamSpecFromForm reads the upstream form of the create and edit pages.
func upstreamSpecFromForm(r *http.Request) (tenant.UpstreamSpec, error) {
	if err := r.ParseForm(); err != nil {
		return tenant.UpstreamSpec{}, authz.Invalid("the form could not be read")
	}
	spec := tenant.UpstreamSpec{Name: strings.TrimSpace(r.PostFormValue("name")), Transport: r.PostFormValue("transport"),
		CredentialRef: strings.TrimSpace(r.PostFormValue("credential_ref")),
		Auth: tenant.AuthSpec{Mode: r.PostFormValue("auth_mode"), ClientID: strings.TrimSpace(r.PostFormValue("oauth_client_id")),
			ClientSecretRef: strings.TrimSpace(r.PostFormValue("oauth_client_secret_ref")), Scopes: strings.Fields(r.PostFormValue("oauth_scopes")),
			Issuer: strings.TrimSpace(r.PostFormValue("oauth_issuer")), Resource: strings.TrimSpace(r.PostFormValue("oauth_resource"))}}
	switch spec.Transport {
	case "stdio":
		if fields := strings.Fields(r.PostFormValue("command")); len(fields) > 0 {
			spec.Command, spec.Args = fields[0], fields[1:]
		}
	case "package":
		p, err := tenant.ParsePackageRef(r.PostFormValue("package"))
		if err != nil {
			return spec, authz.Invalid("%v", err)
		}
		p.Integrity, p.Bin = strings.TrimSpace(r.PostFormValue("integrity")), strings.TrimSpace(r.PostFormValue("bin"))
		spec.Package, spec.Args = p, strings.Fields(r.PostFormValue("args"))
	case "catalog":
		spec.Transport, spec.CatalogEntry = "", strings.TrimSpace(r.PostFormValue("catalog"))
		if spec.CatalogEntry == "" {
			return spec, authz.Invalid("choose an approved catalog entry")
		}
	default:
		spec.URL = strings.TrimSpace(r.PostFormValue("url"))
	}
	labels, err := parseLabels(r.PostFormValue("labels"))
	if err != nil {
		return spec, err
	}
	spec.Labels = labels
	for _, d := range r.PostForm["deny"] {
		switch d {
		case "sampling":
			spec.DenySampling = true
		case "elicitation":
			spec.DenyElicitation = true
		case "roots":
			spec.DenyRoots = true
		default:
			return spec, authz.Invalid("unknown request kind %q", d)
		}
	}
	return spec, nil
}

// findUpstream returns the tenant's upstream with its gateway, and the
// virtual servers that serve it.
func (s *Server) findUpstream(r *http.Request, rq *request, id uuid.UUID) (*ent.Upstream, []string, error) {
	us, err := s.cfg.Tenants.Upstreams(r.Context(), rq.viewer.TenantID)
	if err != nil {
		return nil, nil, err
	}
	i := slices.IndexFunc(us, func(u *ent.Upstream) bool { return u.ID == id })
	if i < 0 {
		return nil, nil, authz.ErrNotFound
	}
	vss, err := s.cfg.Tenants.VirtualServers(r.Context(), rq.viewer.TenantID)
	if err != nil {
		return nil, nil, err
	}
	var servedBy []string
	for _, v := range vss {
		if v.GatewayID == us[i].GatewayID && slices.Contains(v.Upstreams, us[i].Name) {
			servedBy = append(servedBy, v.Name)
		}
	}
	return us[i], servedBy, nil
}

func (s *Server) upstreamPage(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	s.renderUpstream(w, r, rq, id, http.StatusOK, "")
}

func (s *Server) renderUpstream(w http.ResponseWriter, r *http.Request, rq *request, id uuid.UUID, status int, errMsg string) {
	if !rq.viewer.Can(viewer.RoleAdmin) {
		s.fail(w, r, rq, fmt.Errorf("%w: only admins change upstreams", authz.ErrPermissionDenied))
		return
	}
	u, servedBy, err := s.findUpstream(r, rq, id)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	catalog, err := s.approvedCatalog(r, rq)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.UpstreamEdit{Page: s.page(rq, "Upstream "+u.Name, "upstreams"), ID: u.ID.String(), Name: u.Name,
		Gateway: u.Edges.Gateway.Name, GatewayID: u.GatewayID.String(),
		Run: ui.UpstreamRun{Transport: u.Transport.String(), URL: u.URL, Credential: u.CredentialRef, Catalog: catalog, CatalogEntry: u.CatalogEntry,
			Auth: u.AuthMode.String(), ClientID: u.OauthClientID, ClientSecretRef: u.OauthClientSecretRef, Scopes: strings.Join(u.OauthScopes, " "),
			Issuer: u.OauthIssuer, Resource: u.OauthResource},
		DenySampling: u.DenySampling, DenyElicitation: u.DenyElicitation, DenyRoots: u.DenyRoots, ServedBy: servedBy}
	switch {
	case u.CatalogEntry != "":
		vm.Run.Transport = "catalog"
	case u.Transport == upstream.TransportPackage:
		vm.Run.Package = u.PackageEcosystem + ":" + u.PackageName + "@" + u.PackageVersion
		vm.Run.Integrity, vm.Run.Bin, vm.Run.Args = u.PackageIntegrity, u.PackageBin, strings.Join(u.Args, " ")
	case u.Transport == upstream.TransportStdio:
		vm.Run.Command = strings.TrimSpace(u.Command + " " + strings.Join(u.Args, " "))
	}
	var labels []string
	for k, v := range u.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	vm.Labels = strings.Join(labels, ", ")
	vm.Error = errMsg
	s.render(w, r, status, ui.UpstreamEditPage(vm))
}

func (s *Server) updateUpstream(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	var u *ent.Upstream
	if err == nil {
		u, _, err = s.findUpstream(r, rq, id)
	}
	var spec tenant.UpstreamSpec
	if err == nil {
		spec, err = upstreamSpecFromForm(r)
	}
	if err == nil {
		spec.Name, spec.CredentialHeader = u.Name, u.CredentialHeader // neither is on the form
		_, err = s.cfg.Tenants.UpdateUpstream(r.Context(), rq.viewer.TenantID, id, spec)
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderUpstream(w, r, rq, id, status, msg) })
		return
	}
	http.Redirect(w, r, "/upstreams", http.StatusSeeOther)
}

func (s *Server) deleteUpstream(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		err = confirmed(r)
	}
	if err == nil {
		err = s.cfg.Tenants.DeleteUpstream(r.Context(), rq.viewer.TenantID, id)
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderUpstream(w, r, rq, id, status, msg) })
		return
	}
	http.Redirect(w, r, "/upstreams", http.StatusSeeOther)
}

// --- virtual servers

// virtualServerSpecFromForm reads the virtual server form of the create and edit pages.
func virtualServerSpecFromForm(r *http.Request) (tenant.VirtualServerSpec, error) {
	spec := tenant.VirtualServerSpec{Name: strings.TrimSpace(r.PostFormValue("name")), Unprefixed: r.PostFormValue("unprefixed") == "1"}
	for _, u := range strings.Split(r.PostFormValue("upstreams"), ",") {
		if u = strings.TrimSpace(u); u != "" {
			spec.Upstreams = append(spec.Upstreams, u)
		}
	}
	for _, rn := range strings.Split(r.PostFormValue("renames"), ",") {
		if rn = strings.TrimSpace(rn); rn == "" {
			continue
		}
		rename, err := schematype.ParseToolRename(rn)
		if err != nil {
			return spec, authz.Invalid("%v", err)
		}
		spec.Renames = append(spec.Renames, rename)
	}
	return spec, nil
}

func (s *Server) virtualServerPage(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	s.renderVirtualServer(w, r, rq, id, http.StatusOK, "")
}

func (s *Server) renderVirtualServer(w http.ResponseWriter, r *http.Request, rq *request, id uuid.UUID, status int, errMsg string) {
	if !rq.viewer.Can(viewer.RoleAdmin) {
		s.fail(w, r, rq, fmt.Errorf("%w: only admins change virtual servers", authz.ErrPermissionDenied))
		return
	}
	vss, err := s.cfg.Tenants.VirtualServers(r.Context(), rq.viewer.TenantID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	i := slices.IndexFunc(vss, func(v *ent.VirtualServer) bool { return v.ID == id })
	if i < 0 {
		s.fail(w, r, rq, authz.ErrNotFound)
		return
	}
	v := vss[i]
	renames := make([]string, 0, len(v.Renames))
	for _, rn := range v.Renames {
		renames = append(renames, rn.Upstream+"/"+rn.Tool+"="+rn.Name)
	}
	vm := ui.VirtualServerEdit{Page: s.page(rq, "Virtual server "+v.Name, "virtual-servers"), ID: v.ID.String(), Name: v.Name,
		Gateway: v.Edges.Gateway.Name, GatewayID: v.GatewayID.String(), Upstreams: strings.Join(v.Upstreams, ", "),
		Renames: strings.Join(renames, ", "), Unprefixed: v.Unprefixed}
	vm.Error = errMsg
	s.render(w, r, status, ui.VirtualServerEditPage(vm))
}

func (s *Server) updateVirtualServer(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	var spec tenant.VirtualServerSpec
	if err == nil {
		spec, err = virtualServerSpecFromForm(r)
	}
	if err == nil {
		_, err = s.cfg.Tenants.UpdateVirtualServer(r.Context(), rq.viewer.TenantID, id, spec)
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderVirtualServer(w, r, rq, id, status, msg) })
		return
	}
	http.Redirect(w, r, "/virtual-servers", http.StatusSeeOther)
}

func (s *Server) deleteVirtualServer(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		err = confirmed(r)
	}
	if err == nil {
		err = s.cfg.Tenants.DeleteVirtualServer(r.Context(), rq.viewer.TenantID, id)
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderVirtualServer(w, r, rq, id, status, msg) })
		return
	}
	http.Redirect(w, r, "/virtual-servers", http.StatusSeeOther)
}
