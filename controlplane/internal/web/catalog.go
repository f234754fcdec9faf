package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/catalog"
	"github.com/portcullis-mcp/portcullis/ent/catalogentry"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	"github.com/portcullis-mcp/portcullis/ui"
)

func (s *Server) catalogPage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.renderCatalog(w, r, rq, http.StatusOK, "", "")
}

func (s *Server) renderCatalog(w http.ResponseWriter, r *http.Request, rq *request, status int, errMsg, notice string) {
	es, err := s.cfg.Catalog.List(r.Context(), rq.viewer.TenantID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.Catalog{Page: s.page(rq, "Catalog", "catalog")}
	vm.Error, vm.Notice = errMsg, notice
	for _, e := range es {
		row := ui.CatalogRow{ID: e.ID.String(), Name: e.Name, Version: e.Version, Title: e.Title, Description: e.Description, Runs: e.URL,
			Status: e.Status.String(), RequestedBy: e.RequestedBy, Approvals: catalog.Approvals(e.Decisions), Required: e.ApprovalsRequired, Created: e.CreatedAt}
		if e.Transport == catalogentry.TransportPackage {
			row.Runs = strings.TrimSpace(e.PackageEcosystem + ":" + e.PackageName + "@" + e.PackageVersion + " " + strings.Join(e.Args, " "))
			row.Integrity = e.PackageIntegrity
		}
		var needs []string
		for _, c := range e.Credentials {
			n := c.Kind + " " + c.Name
			if c.Secret {
				n += " (secret)"
			}
			needs = append(needs, n)
		}
		row.Needs = strings.Join(needs, ", ")
		for _, d := range e.Decisions {
			row.Decisions = append(row.Decisions, fmt.Sprintf("%sd by %s", d.Decision, d.Actor))
		}
		vm.Entries = append(vm.Entries, row)
	}
	s.render(w, r, status, ui.CatalogPage(vm))
}

func (s *Server) importCatalog(w http.ResponseWriter, r *http.Request, rq *request) {
	e, err := s.cfg.Catalog.ImportServerJSON(r.Context(), rq.viewer.TenantID, []byte(r.PostFormValue("server_json")), catalog.ImportOptions{
		Integrity: strings.TrimSpace(r.PostFormValue("integrity")), Bin: strings.TrimSpace(r.PostFormValue("bin")), Remote: r.PostFormValue("remote") == "1"})
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderCatalog(w, r, rq, status, msg, "") })
		return
	}
	s.renderCatalog(w, r, rq, http.StatusOK, "", fmt.Sprintf("%s@%s is in the catalog, pending approval by someone else.", e.Name, e.Version))
}

func (s *Server) decideCatalog(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	var reject bool
	switch r.PostFormValue("decision") {
	case "approve":
	case "reject":
		reject = true
	default:
		s.renderCatalog(w, r, rq, http.StatusBadRequest, "decision must be approve or reject", "")
		return
	}
	e, err := s.cfg.Catalog.Decide(r.Context(), rq.viewer.TenantID, id, reject, r.PostFormValue("comment"))
	if errors.Is(err, authz.ErrPermissionDenied) && rq.viewer.Can(viewer.RoleApprover) {
		// An approver who may not approve this one (who added it) reads why on the page.
		s.renderCatalog(w, r, rq, http.StatusForbidden, err.Error(), "")
		return
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderCatalog(w, r, rq, status, msg, "") })
		return
	}
	s.renderCatalog(w, r, rq, http.StatusOK, "", fmt.Sprintf("%s@%s is %s.", e.Name, e.Version, e.Status))
}

func (s *Server) deleteCatalog(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		err = confirmed(r)
	}
	if err == nil {
		err = s.cfg.Catalog.Delete(r.Context(), rq.viewer.TenantID, id)
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderCatalog(w, r, rq, status, msg, "") })
		return
	}
	http.Redirect(w, r, "/catalog", http.StatusSeeOther)
}

// approvedCatalog lists the approved entries upstreams may be added from, as NAME@VERSION.
func (s *Server) approvedCatalog(r *http.Request, rq *request) ([]string, error) {
	if !rq.viewer.Can(viewer.RoleAdmin) {
		return nil, nil
	}
	es, err := s.cfg.Catalog.List(r.Context(), rq.viewer.TenantID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range es {
		if e.Status == catalogentry.StatusApproved {
			out = append(out, e.Name+"@"+e.Version)
		}
	}
	return out, nil
}
