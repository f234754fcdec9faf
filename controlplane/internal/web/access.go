package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/access"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/ui"
)

func (s *Server) accessPage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.renderAccess(w, r, rq, http.StatusOK, "", "")
}

func (s *Server) renderAccess(w http.ResponseWriter, r *http.Request, rq *request, status int, errMsg, secret string) {
	ctx, tid := r.Context(), rq.viewer.TenantID
	keys, err := s.cfg.Access.ClientKeys(ctx, tid)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	iss, claim, err := s.cfg.Access.ClientIdentityProvider(ctx, tid)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.Access{Page: s.page(rq, "Access", "access"), Secret: secret, Issuer: iss, GroupClaim: claim}
	vm.Error = errMsg
	for _, k := range keys {
		vm.Keys = append(vm.Keys, ui.ClientKey{ID: k.ID.String(), Name: k.Name, Groups: k.Groups, Created: k.CreatedAt, Revoked: k.RevokedAt != nil})
	}
	gws, err := s.cfg.Tenants.Gateways(ctx, tid)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	for _, g := range gws {
		rules, err := s.cfg.Access.Rules(ctx, tid, g.ID)
		if err != nil {
			s.fail(w, r, rq, err)
			return
		}
		ga := ui.GatewayAccess{ID: g.ID.String(), Name: g.Name, AuthRequired: g.ClientAuthRequired,
			RatePrincipal: g.RatePrincipalPerMinute, RateTool: g.RateToolPerMinute}
		for _, r := range rules {
			ga.Rules = append(ga.Rules, ui.AccessRule{ID: r.ID.String(), Principal: r.Principal, VirtualServer: r.VirtualServer,
				ToolPattern: r.ToolPattern, Effect: r.Effect.String(), Condition: r.Condition, Description: r.Description, Position: r.Position})
		}
		vm.Gateways = append(vm.Gateways, ga)
	}
	s.render(w, r, status, ui.AccessPage(vm))
}

func (s *Server) accessError(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	s.formError(w, r, rq, err, func(msg string, status int) { s.renderAccess(w, r, rq, status, msg, "") })
}

func (s *Server) createClientKey(w http.ResponseWriter, r *http.Request, rq *request) {
	var groups []string
	for _, g := range strings.Split(r.PostFormValue("groups"), ",") {
		if g = strings.TrimSpace(g); g != "" {
			groups = append(groups, g)
		}
	}
	secret, _, err := s.cfg.Access.CreateClientKey(r.Context(), rq.viewer.TenantID, strings.TrimSpace(r.PostFormValue("name")), groups)
	if err != nil {
		s.accessError(w, r, rq, err)
		return
	}
	s.renderAccess(w, r, rq, http.StatusOK, "", secret)
}

func (s *Server) revokeClientKey(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		err = s.cfg.Access.RevokeClientKey(r.Context(), rq.viewer.TenantID, id)
	}
	if err != nil {
		s.accessError(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/access", http.StatusSeeOther)
}

func (s *Server) setClientAuth(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		err = s.cfg.Access.SetClientAuth(r.Context(), rq.viewer.TenantID, id, r.PostFormValue("required") == "true")
	}
	if err != nil {
		s.accessError(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/access", http.StatusSeeOther)
}

func (s *Server) createRule(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		_, err = s.cfg.Access.CreateRule(r.Context(), rq.viewer.TenantID, id, access.Rule{
			Principal: strings.TrimSpace(r.PostFormValue("principal")), VirtualServer: strings.TrimSpace(r.PostFormValue("virtual_server")),
			ToolPattern: strings.TrimSpace(r.PostFormValue("tool_pattern")), Effect: r.PostFormValue("effect"),
			Condition: strings.TrimSpace(r.PostFormValue("condition")), Description: strings.TrimSpace(r.PostFormValue("description")),
		})
	}
	if err != nil {
		s.accessError(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/access", http.StatusSeeOther)
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		err = s.cfg.Access.DeleteRule(r.Context(), rq.viewer.TenantID, id)
	}
	if err != nil {
		s.accessError(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/access", http.StatusSeeOther)
}

func (s *Server) setRateLimits(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		pp, err1 := strconv.Atoi(strings.TrimSpace(r.PostFormValue("principal_per_minute")))
		pt, err2 := strconv.Atoi(strings.TrimSpace(r.PostFormValue("tool_per_minute")))
		if err1 != nil || err2 != nil {
			err = authz.Invalid("rate limits must be whole numbers of calls per minute (0 = unlimited)")
		} else {
			err = s.cfg.Access.SetRateLimits(r.Context(), rq.viewer.TenantID, id, pp, pt)
		}
	}
	if err != nil {
		s.accessError(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/access", http.StatusSeeOther)
}

func (s *Server) setClientIdP(w http.ResponseWriter, r *http.Request, rq *request) {
	err := s.cfg.Access.SetClientIdentityProvider(r.Context(), rq.viewer.TenantID, strings.TrimSpace(r.PostFormValue("issuer")), strings.TrimSpace(r.PostFormValue("group_claim")))
	if err != nil {
		s.accessError(w, r, rq, err)
		return
	}
	http.Redirect(w, r, "/access", http.StatusSeeOther)
}
