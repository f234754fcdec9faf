package web

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/audit"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/schematype"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	"github.com/portcullis-mcp/portcullis/ui"
)

var roleNames = []string{"viewer", "approver", "admin", "owner"}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, ui.SignIn(s.cfg.OIDC.Issuer))
}

// --- tenants

func (s *Server) tenantsPage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.render(w, r, http.StatusOK, ui.TenantsPage(ui.Tenants{Page: s.page(rq, "Tenants", "")}))
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request, rq *request) {
	ctx := viewer.NewContext(r.Context(), viewer.Viewer{UserID: rq.user.ID, Actor: "user:" + rq.user.Email}) // no tenant yet; names the actor
	t, err := s.cfg.Tenants.CreateTenant(ctx, r.PostFormValue("name"), strings.TrimSpace(r.PostFormValue("slug")), rq.user.ID)
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) {
			p := s.page(rq, "Tenants", "")
			p.Error = msg
			s.render(w, r, status, ui.TenantsPage(ui.Tenants{Page: p}))
		})
		return
	}
	if err := s.cfg.IDs.SetSessionTenant(r.Context(), rq.session, t.ID); err != nil {
		s.fail(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) switchTenant(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := uuid.Parse(r.PostFormValue("tenant"))
	if err != nil {
		s.fail(w, r, rq, authz.ErrNotFound)
		return
	}
	if err := s.cfg.IDs.SetSessionTenant(r.Context(), rq.session, id); err != nil {
		s.fail(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// --- dashboard

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request, rq *request) {
	ctx, tid := r.Context(), rq.viewer.TenantID
	vm := ui.Dashboard{Page: s.page(rq, "Dashboard", "dashboard"), PendingChanges: rq.pending}
	gws, err := s.cfg.Tenants.Gateways(ctx, tid)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm.Gateways = len(gws)
	for _, g := range gws {
		for _, a := range g.Edges.Agents {
			vm.AgentsTotal++
			if a.Connected {
				vm.AgentsOnline++
			}
		}
	}
	ups, err := s.cfg.Tenants.Upstreams(ctx, tid)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm.Upstreams = len(ups)
	tools, err := s.cfg.Tenants.Tools(ctx, tid)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	for _, t := range tools {
		vm.Tools++
		switch toolStatus(t) {
		case "approved":
			vm.ToolsPinned++
		case "drifted":
			vm.ToolsDrifted++
		case "awaiting approval":
			vm.ToolsUnapproved++
		}
	}
	evs, err := audit.List(ctx, s.cfg.DB, tid, 10)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm.Recent = auditRows(evs)
	points, err := s.lastHour(r, rq)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm.Traffic, vm.Latency = trafficChart(points), latencyChart(points)
	s.render(w, r, http.StatusOK, ui.DashboardPage(vm))
}

func toolStatus(t *ent.Tool) string {
	switch {
	case t.PinnedSha256 != "" && t.LiveSha256 == t.PinnedSha256:
		return "approved"
	case t.PinnedSha256 != "" && t.LiveSha256 == "":
		return "gone"
	case t.PinnedSha256 != "":
		return "drifted"
	case t.LiveSha256 == "":
		return "gone"
	}
	return "awaiting approval"
}

// --- members

func (s *Server) membersPage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.renderMembers(w, r, rq, http.StatusOK, "", "")
}

func (s *Server) renderMembers(w http.ResponseWriter, r *http.Request, rq *request, status int, errMsg, notice string) {
	ms, err := s.cfg.IDs.Members(r.Context(), rq.viewer.TenantID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.Members{Page: s.page(rq, "Members", "members"), Roles: roleNames}
	vm.Error, vm.Notice = errMsg, notice
	owners := 0
	for _, m := range ms {
		if m.Role == "owner" && !m.Pending {
			owners++
		}
	}
	for _, m := range ms {
		vm.Members = append(vm.Members, ui.Member{ID: m.ID.String(), Email: m.Email, Name: m.Name, Role: m.Role, Pending: m.Pending, Since: m.Since,
			LastOwner: m.Role == "owner" && !m.Pending && owners == 1})
	}
	s.render(w, r, status, ui.MembersPage(vm))
}

func formRole(r *http.Request) viewer.Role {
	role, err := viewer.ParseRole(r.PostFormValue("role"))
	if err != nil {
		return viewer.RoleNone
	}
	return role
}

func (s *Server) invite(w http.ResponseWriter, r *http.Request, rq *request) {
	email := strings.TrimSpace(r.PostFormValue("email"))
	if _, err := s.cfg.IDs.Invite(r.Context(), rq.viewer.TenantID, email, formRole(r)); err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderMembers(w, r, rq, status, msg, "") })
		return
	}
	http.Redirect(w, r, "/members", http.StatusSeeOther)
}

func (s *Server) setRole(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		err = s.cfg.IDs.SetRole(r.Context(), rq.viewer.TenantID, id, formRole(r))
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderMembers(w, r, rq, status, msg, "") })
		return
	}
	http.Redirect(w, r, "/members", http.StatusSeeOther)
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		err = s.cfg.IDs.RemoveMember(r.Context(), rq.viewer.TenantID, id)
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderMembers(w, r, rq, status, msg, "") })
		return
	}
	http.Redirect(w, r, "/members", http.StatusSeeOther)
}

// --- gateways

func (s *Server) gatewayVM(r *http.Request, g *ent.Gateway) (ui.Gateway, error) {
	v, err := s.cfg.Tenants.PolicyVersion(r.Context(), g.TenantID, g.ID)
	if err != nil {
		return ui.Gateway{}, err
	}
	out := ui.Gateway{ID: g.ID.String(), Name: g.Name, Created: g.CreatedAt, PolicyVersion: v}
	for _, a := range g.Edges.Agents {
		if a.Connected && !a.Revoked {
			out.Online++
		}
		out.Agents = append(out.Agents, ui.Agent{ID: a.ID.String(), Hostname: a.Hostname, Version: a.Version, Connected: a.Connected,
			LastSeen: a.LastSeen, AppliedVersion: a.AppliedVersion, LastNack: a.LastNack, Revoked: a.Revoked, CertExpires: a.CertExpiresAt})
	}
	return out, nil
}

func (s *Server) gatewayList(r *http.Request) ([]ui.Gateway, error) {
	gws, err := s.cfg.Tenants.Gateways(r.Context(), viewerOf(r).TenantID)
	if err != nil {
		return nil, err
	}
	out := make([]ui.Gateway, 0, len(gws))
	for _, g := range gws {
		vm, err := s.gatewayVM(r, g)
		if err != nil {
			return nil, err
		}
		out = append(out, vm)
	}
	return out, nil
}

func viewerOf(r *http.Request) viewer.Viewer {
	v, _ := viewer.FromContext(r.Context())
	return v
}

func (s *Server) gatewaysPage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.renderGateways(w, r, rq, http.StatusOK, "")
}

func (s *Server) renderGateways(w http.ResponseWriter, r *http.Request, rq *request, status int, errMsg string) {
	gs, err := s.gatewayList(r)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.Gateways{Page: s.page(rq, "Gateways", "gateways"), Gateways: gs}
	vm.Error = errMsg
	s.render(w, r, status, ui.GatewaysPage(vm))
}

func (s *Server) createGateway(w http.ResponseWriter, r *http.Request, rq *request) {
	g, err := s.cfg.Tenants.CreateGateway(r.Context(), rq.viewer.TenantID, strings.TrimSpace(r.PostFormValue("name")))
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderGateways(w, r, rq, status, msg) })
		return
	}
	http.Redirect(w, r, "/gateways/"+g.ID.String(), http.StatusSeeOther)
}

func (s *Server) gatewayPage(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	s.renderGateway(w, r, rq, id, http.StatusOK, "")
}

func (s *Server) renderGateway(w http.ResponseWriter, r *http.Request, rq *request, id uuid.UUID, status int, errMsg string) {
	g, err := s.cfg.Tenants.Gateway(r.Context(), rq.viewer.TenantID, id)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	gvm, err := s.gatewayVM(r, g)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	trees, err := s.cfg.Tenants.PackageTrees(r.Context(), rq.viewer.TenantID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.GatewayDetail{Page: s.page(rq, "Gateway "+g.Name, "gateways"), Gateway: gvm}
	for _, u := range g.Edges.Upstreams {
		vm.Upstreams = append(vm.Upstreams, upstreamVM(u, g, trees[u.ID]))
	}
	for _, v := range g.Edges.VirtualServers {
		vm.VirtualServers = append(vm.VirtualServers, ui.VirtualServer{ID: v.ID.String(), Gateway: g.Name, Name: v.Name, Upstreams: v.Upstreams, Naming: schematype.Naming(v.Unprefixed, len(v.Renames))})
	}
	if vm.CanAdmin {
		if vm.Tokens, err = s.tokenVMs(r, rq, g.ID); err != nil {
			s.fail(w, r, rq, err)
			return
		}
	}
	vm.Error = errMsg
	s.render(w, r, status, ui.GatewayDetailPage(vm))
}

func (s *Server) agentsPartial(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	g, err := s.cfg.Tenants.Gateway(r.Context(), rq.viewer.TenantID, id)
	if err != nil {
		status, msg := statusOf(err)
		http.Error(w, msg, status)
		return
	}
	gvm, err := s.gatewayVM(r, g)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	s.render(w, r, http.StatusOK, ui.AgentsTable(gvm))
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	const ttl = time.Hour
	uses := 1
	if v := r.PostFormValue("uses"); v != "" {
		if uses, err = strconv.Atoi(v); err != nil {
			http.Error(w, "uses must be a whole number", http.StatusBadRequest)
			return
		}
	}
	tok, err := s.cfg.EnrollmentToken(r.Context(), rq.viewer.TenantID, id, ttl, uses)
	if err != nil {
		status, msg := statusOf(err)
		if status == http.StatusInternalServerError {
			s.log.Error("creating enrollment token", "err", err)
		}
		http.Error(w, msg, status)
		return
	}
	s.render(w, r, http.StatusOK, ui.EnrollmentPartial(ui.Enrollment{Token: tok, ControlPlane: s.cfg.AgentEndpoint, Expires: time.Now().Add(ttl), Uses: uses}))
}

// --- upstreams

// upstreamVM is an upstream's row; tree is a package upstream's dependency tree item, if reported.
func upstreamVM(u *ent.Upstream, g *ent.Gateway, tree *ent.Tool) ui.Upstream {
	target := u.URL
	switch {
	case u.Command != "":
		target = strings.TrimSpace(u.Command + " " + strings.Join(u.Args, " "))
	case u.PackageName != "":
		target = strings.TrimSpace(u.PackageEcosystem + ":" + u.PackageName + "@" + u.PackageVersion + " " + strings.Join(u.Args, " "))
	}
	if u.CatalogEntry != "" {
		target += " (catalog " + u.CatalogEntry + ")"
	}
	var labels []string
	for k, v := range u.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	out := ui.Upstream{ID: u.ID.String(), GatewayID: u.GatewayID.String(), Name: u.Name, Transport: u.Transport.String(),
		Target: target, Labels: strings.Join(labels, ", "), Reachable: u.Reachable, LastError: u.LastError}
	var denied []string
	for _, d := range []struct {
		on   bool
		name string
	}{{u.DenySampling, "sampling"}, {u.DenyElicitation, "elicitation"}, {u.DenyRoots, "roots"}} {
		if d.on {
			denied = append(denied, d.name)
		}
	}
	out.Denied = strings.Join(denied, ", ")
	if g != nil {
		out.Gateway = g.Name
	}
	if tree != nil && u.Transport == upstream.TransportPackage {
		out.TreeID, out.TreeStatus = tree.ID.String(), toolStatus(tree)
	}
	return out
}

func (s *Server) upstreamsPage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.renderUpstreams(w, r, rq, http.StatusOK, "")
}

func (s *Server) renderUpstreams(w http.ResponseWriter, r *http.Request, rq *request, status int, errMsg string) {
	us, err := s.cfg.Tenants.Upstreams(r.Context(), rq.viewer.TenantID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	gs, err := s.gatewayList(r)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	catalog, err := s.approvedCatalog(r, rq)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.Upstreams{Page: s.page(rq, "Upstreams", "upstreams"), Gateways: gs, Catalog: catalog}
	vm.Error = errMsg
	trees, err := s.cfg.Tenants.PackageTrees(r.Context(), rq.viewer.TenantID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	for _, u := range us {
		vm.Upstreams = append(vm.Upstreams, upstreamVM(u, u.Edges.Gateway, trees[u.ID]))
	}
	s.render(w, r, status, ui.UpstreamsPage(vm))
}

func (s *Server) createUpstream(w http.ResponseWriter, r *http.Request, rq *request) {
	again := func(msg string, status int) { s.renderUpstreams(w, r, rq, status, msg) }
	gid, err := uuid.Parse(r.PostFormValue("gateway"))
	if err != nil {
		again("Choose a gateway.", http.StatusBadRequest)
		return
	}
	spec, err := upstreamSpecFromForm(r)
	if err != nil {
		s.formError(w, r, rq, err, again)
		return
	}
	if _, err := s.cfg.Tenants.CreateUpstream(r.Context(), rq.viewer.TenantID, gid, spec); err != nil {
		s.formError(w, r, rq, err, again)
		return
	}
	http.Redirect(w, r, "/upstreams", http.StatusSeeOther)
}

// parseLabels reads "k=v, k2=v2".
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || len(k) > 63 || len(v) > 255 {
			return nil, authz.Invalid("labels are written key=value, separated by commas (got %q)", part)
		}
		out[k] = v
	}
	if len(out) > 32 {
		return nil, authz.Invalid("at most 32 labels")
	}
	return out, nil
}

// --- virtual servers

func (s *Server) virtualServersPage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.renderVirtualServers(w, r, rq, http.StatusOK, "")
}

func (s *Server) renderVirtualServers(w http.ResponseWriter, r *http.Request, rq *request, status int, errMsg string) {
	vss, err := s.cfg.Tenants.VirtualServers(r.Context(), rq.viewer.TenantID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	gs, err := s.gatewayList(r)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.VirtualServers{Page: s.page(rq, "Virtual servers", "virtual-servers"), Gateways: gs}
	vm.Error = errMsg
	for _, v := range vss {
		vm.VirtualServers = append(vm.VirtualServers, ui.VirtualServer{ID: v.ID.String(), Gateway: v.Edges.Gateway.Name, Name: v.Name, Upstreams: v.Upstreams, Naming: schematype.Naming(v.Unprefixed, len(v.Renames))})
	}
	s.render(w, r, status, ui.VirtualServersPage(vm))
}

func (s *Server) createVirtualServer(w http.ResponseWriter, r *http.Request, rq *request) {
	again := func(msg string, status int) { s.renderVirtualServers(w, r, rq, status, msg) }
	gid, err := uuid.Parse(r.PostFormValue("gateway"))
	if err != nil {
		again("Choose a gateway.", http.StatusBadRequest)
		return
	}
	spec, err := virtualServerSpecFromForm(r)
	if err != nil {
		s.formError(w, r, rq, err, again)
		return
	}
	if _, err := s.cfg.Tenants.CreateVirtualServerSpec(r.Context(), rq.viewer.TenantID, gid, spec); err != nil {
		s.formError(w, r, rq, err, again)
		return
	}
	http.Redirect(w, r, "/virtual-servers", http.StatusSeeOther)
}

// --- tools

func (s *Server) toolsPage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.renderTools(w, r, rq, http.StatusOK, "")
}

func (s *Server) renderTools(w http.ResponseWriter, r *http.Request, rq *request, status int, errMsg string) {
	tools, err := s.cfg.Tenants.Tools(r.Context(), rq.viewer.TenantID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.Tools{Page: s.page(rq, "Tools", "tools")}
	vm.Error = errMsg
	for _, t := range tools {
		up := ""
		if t.Edges.Upstream != nil {
			up = t.Edges.Upstream.Name
		}
		vm.Tools = append(vm.Tools, ui.Tool{ID: t.ID.String(), Upstream: up, Name: t.Name, Kind: t.Kind.String(), Labels: t.FlowLabels, Live: t.LiveSha256, Pinned: t.PinnedSha256,
			Status: toolStatus(t), LastSeen: t.LastSeen})
	}
	s.render(w, r, status, ui.ToolsPage(vm))
}

func (s *Server) pinTool(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		err = s.cfg.Inventory.PinLive(r.Context(), rq.viewer.TenantID, id)
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderTools(w, r, rq, status, msg) })
		return
	}
	http.Redirect(w, r, "/tools", http.StatusSeeOther)
}

func (s *Server) unpinTool(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		err = s.cfg.Inventory.Unpin(r.Context(), rq.viewer.TenantID, id)
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderTools(w, r, rq, status, msg) })
		return
	}
	http.Redirect(w, r, "/tools", http.StatusSeeOther)
}

// --- API keys

func (s *Server) apiKeysPage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.renderAPIKeys(w, r, rq, http.StatusOK, "", "")
}

func (s *Server) renderAPIKeys(w http.ResponseWriter, r *http.Request, rq *request, status int, errMsg, secret string) {
	ks, err := s.cfg.IDs.APIKeys(r.Context(), rq.viewer.TenantID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.APIKeys{Page: s.page(rq, "API keys", "api-keys"), Secret: secret, Roles: roleNames}
	vm.Error = errMsg
	for _, k := range ks {
		vm.Keys = append(vm.Keys, ui.APIKey{ID: k.ID.String(), Name: k.Name, Role: k.Role.String(), Created: k.CreatedAt, LastUsed: k.LastUsedAt, Revoked: k.RevokedAt != nil})
	}
	s.render(w, r, status, ui.APIKeysPage(vm))
}

func (s *Server) createAPIKey(w http.ResponseWriter, r *http.Request, rq *request) {
	secret, _, err := s.cfg.IDs.CreateAPIKey(r.Context(), rq.viewer.TenantID, r.PostFormValue("name"), formRole(r))
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderAPIKeys(w, r, rq, status, msg, "") })
		return
	}
	// The secret is rendered in this response only (no redirect, so it never
	// lands in history or logs).
	s.renderAPIKeys(w, r, rq, http.StatusCreated, "", secret)
}

func (s *Server) revokeAPIKey(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		err = s.cfg.IDs.RevokeAPIKey(r.Context(), rq.viewer.TenantID, id)
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderAPIKeys(w, r, rq, status, msg, "") })
		return
	}
	http.Redirect(w, r, "/api-keys", http.StatusSeeOther)
}

// --- audit

func auditRows(evs []*ent.AuditEvent) []ui.AuditRow {
	out := make([]ui.AuditRow, 0, len(evs))
	for _, e := range evs {
		out = append(out, ui.AuditRow{Time: e.CreatedAt, Actor: e.Actor, Action: e.Action, Target: e.TargetType, TargetName: e.TargetName,
			Before: prettyJSON(e.Before), After: prettyJSON(e.After)})
	}
	return out
}

// auditPerPage is the audit log's page.
const auditPerPage = 50

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, rq *request) {
	q := r.URL.Query()
	aq := audit.Query{Action: q.Get("action"), Actor: q.Get("actor"), Limit: auditPerPage + 1}
	before, id, ok, err := pageCursor(q)
	u, uerr := uuid.Parse(id)
	if err != nil || (ok && uerr != nil) {
		s.fail(w, r, rq, authz.Invalid("before: not a page cursor"))
		return
	}
	if ok {
		aq.Before = &audit.Cursor{Time: before, ID: u}
	}
	evs, err := audit.Search(r.Context(), s.cfg.DB, rq.viewer.TenantID, aq)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.Audit{Page: s.page(rq, "Audit log", "audit"), Action: aq.Action, Actor: aq.Actor, Newest: aq.Before != nil}
	if len(evs) > auditPerPage {
		evs = evs[:auditPerPage]
		last := evs[len(evs)-1]
		vm.Older = olderPage("/audit", q, last.CreatedAt, last.ID.String())
	}
	vm.Events = auditRows(evs)
	s.render(w, r, http.StatusOK, ui.AuditPage(vm))
}

func prettyJSON(m map[string]any) string {
	if m == nil {
		return ""
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return ""
	}
	return string(b)
}
