package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/change"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/inventory"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/scan"
	"github.com/portcullis-mcp/portcullis/ent/approval"
	"github.com/portcullis-mcp/portcullis/ent/changerequest"
	"github.com/portcullis-mcp/portcullis/ent/schematype"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	"github.com/portcullis-mcp/portcullis/ui"
)

var changeStatuses = []string{"pending", "approved", "rejected", "superseded"}

func changeRow(sm change.Summary) ui.ChangeRow {
	cr := sm.ChangeRequest
	return ui.ChangeRow{ID: cr.ID.String(), Tool: sm.ToolName, ItemKind: sm.ToolKind, Upstream: sm.UpstreamName, Gateway: sm.GatewayName,
		Kind: cr.Kind.String(), Status: cr.Status.String(), From: cr.FromSha256, To: cr.ToSha256, RequestedBy: cr.RequestedBy,
		Created: cr.CreatedAt, Approvals: sm.Approvals, Required: cr.ApprovalsRequired, Findings: sm.Findings}
}

func (s *Server) changesPage(w http.ResponseWriter, r *http.Request, rq *request) {
	status := r.URL.Query().Get("status")
	switch status {
	case "":
		status = "pending"
	case "all":
		status = ""
	}
	crs, err := s.cfg.Changes.List(r.Context(), rq.viewer.TenantID, status, 0)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.Changes{Page: s.page(rq, "Change requests", "changes"), Status: status, Statuses: changeStatuses}
	for _, cr := range crs {
		vm.Rows = append(vm.Rows, changeRow(cr))
	}
	s.render(w, r, http.StatusOK, ui.ChangesPage(vm))
}

func findingRows(fs []schematype.Finding) []ui.FindingRow {
	out := make([]ui.FindingRow, len(fs))
	for i, f := range fs {
		out[i] = ui.FindingRow{Kind: f.Kind, Severity: f.Severity, Path: f.Path, Excerpt: f.Excerpt}
	}
	return out
}

func progress(d *change.Detail) ui.ChangeAgents {
	p := ui.ChangeAgents{ID: d.ID.String(), PolicyVersion: d.PolicyVersion}
	for _, a := range d.Agents {
		p.Agents = append(p.Agents, ui.AgentAck{Hostname: a.Hostname, Connected: a.Connected, Applied: a.AppliedVersion, AppliedAt: a.AppliedAt})
	}
	return p
}

func (s *Server) changePage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.renderChange(w, r, rq, http.StatusOK, "", "")
}

func (s *Server) renderChange(w http.ResponseWriter, r *http.Request, rq *request, status int, errMsg, notice string) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	d, err := s.cfg.Changes.Get(r.Context(), rq.viewer.TenantID, id)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.ChangeDetail{Page: s.page(rq, "Change to "+d.ToolName, "changes"), Row: changeRow(d.Summary), Comment: d.Comment,
		DecidedBy: d.DecidedBy, DecidedAt: d.DecidedAt, FromDef: string(d.From), ToDef: string(d.To),
		Findings: findingRows(d.Findings), FromFindings: findingRows(d.FromFindings), Progress: progress(d)}
	vm.Error, vm.Notice = errMsg, notice
	vm.HighFindings = highFindings(d.Findings)
	for _, l := range d.Diff {
		vm.Diff = append(vm.Diff, ui.DiffRow{Op: l.Op, Left: l.Left, Right: l.Right, LeftNo: l.LeftNo, RightNo: l.RightNo})
	}
	me := authz.PrincipalKey(r.Context())
	decided := false
	for _, a := range d.Decisions {
		vm.Decisions = append(vm.Decisions, ui.DecisionRow{Decision: a.Decision.String(), Actor: a.Actor, Comment: a.Comment, At: a.CreatedAt})
		decided = decided || a.ActorKey == me
	}
	switch {
	case d.Status != changerequest.StatusPending:
		vm.WhyNot = "This request is " + d.Status.String() + "."
	case !rq.viewer.Can(viewer.RoleApprover):
		vm.WhyNot = "Only approvers, admins and owners can decide; you are " + rq.viewer.Role.String() + "."
	case d.RequesterKey != "" && d.RequesterKey == me:
		vm.WhyNot = "You opened this request, so someone else must approve it."
	case decided:
		vm.WhyNot = "You have already decided; it needs more approvals from others."
	default:
		vm.CanDecide = true
	}
	s.render(w, r, status, ui.ChangePage(vm))
}

func (s *Server) changeAgentsPartial(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	d, err := s.cfg.Changes.Get(r.Context(), rq.viewer.TenantID, id)
	if err != nil {
		status, msg := statusOf(err)
		http.Error(w, msg, status)
		return
	}
	s.render(w, r, http.StatusOK, ui.ChangeAgentsPartial(progress(d)))
}

func (s *Server) decideChange(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	comment := r.PostFormValue("comment")
	var d change.Decision
	switch r.PostFormValue("decision") {
	case string(approval.DecisionApprove):
		// High-severity findings are read before an approval, not skipped.
		if r.PostFormValue("confirm_high") != "1" {
			if det, gerr := s.cfg.Changes.Get(r.Context(), rq.viewer.TenantID, id); gerr == nil && highFindings(det.Findings) > 0 {
				err = authz.Invalid("this definition has high-severity findings: read them, then tick the confirmation to approve anyway")
				break
			}
		}
		d, err = s.cfg.Changes.Approve(r.Context(), rq.viewer.TenantID, id, comment)
	case string(approval.DecisionReject):
		d, err = s.cfg.Changes.Reject(r.Context(), rq.viewer.TenantID, id, comment)
	default:
		err = authz.Invalid("decision must be approve or reject")
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderChange(w, r, rq, status, msg, "") })
		return
	}
	if rq.pending > 0 && d.Applied {
		rq.pending--
	}
	notice := fmt.Sprintf("Approval recorded: %d of %d.", d.Approvals, d.Request.ApprovalsRequired)
	switch d.Request.Status {
	case changerequest.StatusApproved:
		notice = fmt.Sprintf("Approved. Policy v%d is on its way to the gateway's agents.", d.Request.PolicyVersion)
	case changerequest.StatusRejected:
		notice = "Rejected. The gateway keeps the tool as it was approved."
	}
	s.renderChange(w, r, rq, http.StatusOK, "", notice)
}

// --- settings

func (s *Server) settingsPage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.renderSettings(w, r, rq, http.StatusOK, "", "")
}

func (s *Server) renderSettings(w http.ResponseWriter, r *http.Request, rq *request, status int, errMsg, notice string) {
	n, err := s.cfg.Changes.ApprovalsRequired(r.Context(), rq.viewer.TenantID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	ra, err := s.cfg.Tenants.ResultAction(r.Context(), rq.viewer.TenantID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	catalogOnly, err := s.cfg.Catalog.CatalogOnly(r.Context(), rq.viewer.TenantID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	vm := ui.Settings{Page: s.page(rq, "Settings", "settings"), ApprovalsRequired: n, ResultAction: ra.String(),
		CatalogOnly: catalogOnly, CanOwn: rq.viewer.Can(viewer.RoleOwner)}
	vm.Error, vm.Notice = errMsg, notice
	s.render(w, r, status, ui.SettingsPage(vm))
}

func (s *Server) setApprovals(w http.ResponseWriter, r *http.Request, rq *request) {
	n, err := strconv.Atoi(r.PostFormValue("approvals_required"))
	if err != nil {
		err = authz.Invalid("approvals required must be a number from 1 to 10")
	} else {
		err = s.cfg.Changes.SetApprovalsRequired(r.Context(), rq.viewer.TenantID, n)
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderSettings(w, r, rq, status, msg, "") })
		return
	}
	s.renderSettings(w, r, rq, http.StatusOK, "", fmt.Sprintf("New change requests need %d approvals.", n))
}

func (s *Server) setCatalogOnly(w http.ResponseWriter, r *http.Request, rq *request) {
	on := r.PostFormValue("catalog_only") == "1"
	if err := s.cfg.Catalog.SetCatalogOnly(r.Context(), rq.viewer.TenantID, on); err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderSettings(w, r, rq, status, msg, "") })
		return
	}
	notice := "Upstreams may run any server again."
	if on {
		notice = "Upstreams may now only be added from, or changed to, approved catalog entries."
	}
	s.renderSettings(w, r, rq, http.StatusOK, "", notice)
}

func (s *Server) setResultAction(w http.ResponseWriter, r *http.Request, rq *request) {
	a := r.PostFormValue("result_action")
	if err := s.cfg.Tenants.SetResultAction(r.Context(), rq.viewer.TenantID, a); err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderSettings(w, r, rq, status, msg, "") })
		return
	}
	s.renderSettings(w, r, rq, http.StatusOK, "", "Gateways now "+a+" suspicious results; new bundles are on their way.")
}

func (s *Server) exportPins(w http.ResponseWriter, r *http.Request, rq *request) {
	m, err := s.cfg.Changes.ExportPins(r.Context(), rq.viewer.TenantID)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="portcullis-pins.json"`)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(m)
}

func (s *Server) importPins(w http.ResponseWriter, r *http.Request, rq *request) {
	again := func(msg string, status int) { s.renderSettings(w, r, rq, status, msg, "") }
	f, _, err := r.FormFile("manifest")
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			again(fmt.Sprintf("The manifest is larger than %d bytes.", change.MaxManifestBytes), http.StatusRequestEntityTooLarge)
			return
		}
		again("Choose a manifest file to import.", http.StatusBadRequest)
		return
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, change.MaxManifestBytes+1))
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	res, err := s.cfg.Changes.ImportPins(r.Context(), rq.viewer.TenantID, raw)
	if err != nil {
		s.formError(w, r, rq, err, again)
		return
	}
	s.renderSettings(w, r, rq, http.StatusOK, "", fmt.Sprintf("Manifest imported: %d pinned, %d unpinned, %d unchanged.", res.Pinned, res.Unpinned, res.Unchanged))
}

// --- tool detail

func (s *Server) toolPage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.renderTool(w, r, rq, http.StatusOK, "")
}

func (s *Server) renderTool(w http.ResponseWriter, r *http.Request, rq *request, status int, errMsg string) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	d, err := s.cfg.Changes.Tool(r.Context(), rq.viewer.TenantID, id)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	t := d.Tool
	vm := ui.ToolDetail{Page: s.page(rq, t.Name, "tools"), Tool: ui.Tool{ID: t.ID.String(), Upstream: d.Upstream, Name: t.Name,
		Kind: t.Kind.String(), Live: t.LiveSha256, Pinned: t.PinnedSha256, Status: toolStatus(t), LastSeen: t.LastSeen, Labels: t.FlowLabels},
		AllLabels: inventory.FlowLabels}
	vm.Error = errMsg
	for _, v := range d.Versions {
		vm.Versions = append(vm.Versions, ui.ToolVersion{Sha256: v.Sha256, FirstSeen: v.FirstSeen, LastSeen: v.LastSeen,
			Live: v.Sha256 == t.LiveSha256, Pinned: v.Sha256 == t.PinnedSha256, Findings: findingRows(v.Findings),
			Definition: scan.Visible(string(change.Pretty(v.Definition)))})
	}
	for _, cr := range d.Requests {
		vm.Requests = append(vm.Requests, changeRow(change.Summary{ChangeRequest: cr, ToolName: t.Name, ToolKind: t.Kind.String()}))
	}
	s.render(w, r, status, ui.ToolPage(vm))
}

func (s *Server) setToolLabels(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err == nil {
		_ = r.ParseForm()
		err = s.cfg.Inventory.SetLabels(r.Context(), rq.viewer.TenantID, id, r.PostForm["label"])
	}
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderTool(w, r, rq, status, msg) })
		return
	}
	http.Redirect(w, r, "/tools/"+id.String(), http.StatusSeeOther)
}

func (s *Server) proposeChange(w http.ResponseWriter, r *http.Request, rq *request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	cr, err := s.cfg.Changes.Propose(r.Context(), rq.viewer.TenantID, id, r.PostFormValue("sha256"), r.PostFormValue("comment"))
	if err != nil {
		s.formError(w, r, rq, err, func(msg string, status int) { s.renderTool(w, r, rq, status, msg) })
		return
	}
	http.Redirect(w, r, "/changes/"+cr.ID.String(), http.StatusSeeOther)
}

// highFindings counts the high-severity findings.
func highFindings(fs []schematype.Finding) int {
	n := 0
	for _, f := range fs {
		if f.Severity == "high" {
			n++
		}
	}
	return n
}
