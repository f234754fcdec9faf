package web

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/ui"
)

func (s *Server) connectionsPage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.renderConnections(w, r, rq, http.StatusOK, "")
}

func (s *Server) renderConnections(w http.ResponseWriter, r *http.Request, rq *request, status int, errMsg string) {
	cs, err := s.cfg.Access.Connections(r.Context(), rq.viewer.TenantID, uuid.Nil)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	gws, err := s.cfg.Tenants.Gateways(r.Context(), rq.viewer.TenantID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	names := map[uuid.UUID]string{}
	for _, g := range gws {
		names[g.ID] = g.Name
	}
	vm := ui.Connections{Page: s.page(rq, "Connections", "connections")}
	vm.Error, vm.Own = errMsg, s.cfg.Access.OwnPrincipal(r.Context(), rq.viewer.TenantID)
	for _, c := range cs {
		vm.Rows = append(vm.Rows, ui.ConnectionRow{ID: c.ID.String(), Gateway: names[c.GatewayID], Upstream: c.Upstream, Principal: c.Principal,
			Identity: c.UpstreamIdentity, State: c.State.String(), Connected: c.ConnectedAt, Changed: c.ChangedAt})
	}
	s.render(w, r, status, ui.ConnectionsPage(vm))
}

func (s *Server) revokeConnection(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		err = confirmed(r)
	}
	if err == nil {
		_, err = s.cfg.Access.RevokeConnection(r.Context(), rq.viewer.TenantID, id)
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderConnections(w, r, rq, status, msg) })
		return
	}
	http.Redirect(w, r, "/connections", http.StatusSeeOther)
}
