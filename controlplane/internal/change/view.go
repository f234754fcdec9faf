package change

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	"github.com/sergi/go-diff/diffmatchpatch"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/scan"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/agent"
	"github.com/portcullis-mcp/portcullis/ent/approval"
	"github.com/portcullis-mcp/portcullis/ent/changerequest"
	"github.com/portcullis-mcp/portcullis/ent/schematype"
	"github.com/portcullis-mcp/portcullis/ent/tool"
	"github.com/portcullis-mcp/portcullis/ent/toolversion"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// Summary is a change request as listed.
type Summary struct {
	*ent.ChangeRequest
	ToolName     string
	ToolKind     string // tool, prompt, resource or resource_template
	UpstreamName string
	GatewayName  string
	Approvals    int
	Findings     int
}

// List returns the tenant's change requests, newest first; status "" lists all.
func (s *Service) List(ctx context.Context, tenantID uuid.UUID, status string, limit int) ([]Summary, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 500 {
		limit = 200
	}
	q := s.db.ChangeRequest.Query().Where(changerequest.TenantID(tenantID))
	if status != "" {
		st := changerequest.Status(status)
		if err := changerequest.StatusValidator(st); err != nil {
			return nil, authz.Invalid("status must be pending, approved, rejected or superseded, not %q", status)
		}
		q.Where(changerequest.StatusEQ(st))
	}
	crs, err := q.Order(changerequest.ByCreatedAt(sql.OrderDesc())).Limit(limit).
		WithTool(func(tq *ent.ToolQuery) { tq.WithUpstream(func(uq *ent.UpstreamQuery) { uq.WithGateway() }) }).
		WithApprovals().All(ctx)
	if err != nil {
		return nil, err
	}
	// The findings of every proposed definition, in one query.
	type key struct {
		tool uuid.UUID
		sha  string
	}
	var shas []string
	for _, cr := range crs {
		if cr.ToSha256 != "" {
			shas = append(shas, cr.ToSha256)
		}
	}
	findings := map[key]int{}
	if len(shas) > 0 {
		vs, err := s.db.ToolVersion.Query().Where(toolversion.Sha256In(shas...)).
			Select(toolversion.FieldToolID, toolversion.FieldSha256, toolversion.FieldFindings).All(ctx)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			findings[key{v.ToolID, v.Sha256}] = len(v.Findings)
		}
	}
	out := make([]Summary, 0, len(crs))
	for _, cr := range crs {
		sm := summaryOf(cr)
		sm.Findings = findings[key{cr.ToolID, cr.ToSha256}]
		out = append(out, sm)
	}
	return out, nil
}

// summaryOf describes a change request loaded with its tool, upstream,
// gateway and approvals; Findings is left to the caller.
func summaryOf(cr *ent.ChangeRequest) Summary {
	sm := Summary{ChangeRequest: cr, ToolName: cr.Edges.Tool.Name, ToolKind: cr.Edges.Tool.Kind.String()}
	if up := cr.Edges.Tool.Edges.Upstream; up != nil {
		sm.UpstreamName = up.Name
		if up.Edges.Gateway != nil {
			sm.GatewayName = up.Edges.Gateway.Name
		}
	}
	for _, a := range cr.Edges.Approvals {
		if a.Decision == approval.DecisionApprove {
			sm.Approvals++
		}
	}
	return sm
}

// Pending counts the tenant's pending change requests.
func (s *Service) Pending(ctx context.Context, tenantID uuid.UUID) (int, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return 0, err
	}
	return s.db.ChangeRequest.Query().Where(changerequest.TenantID(tenantID), changerequest.StatusEQ(changerequest.StatusPending)).Count(ctx)
}

// Line is one row of a side-by-side diff. Op is "equal", "delete" (left
// only), "insert" (right only) or "change" (both, differing).
type Line struct {
	Op          string
	Left, Right string
	// LeftNo and RightNo are 1-based line numbers, 0 where the side is empty.
	LeftNo, RightNo int
}

// Detail is everything a reviewer needs to decide.
type Detail struct {
	Summary
	From, To []byte // pretty-printed definitions ("" when absent)
	Diff     []Line
	Findings []schematype.Finding
	// FromFindings are the findings of the pinned definition, so a reviewer
	// sees which are new.
	FromFindings []schematype.Finding
	Decisions    []*ent.Approval
	// Agents of the gateway, to show which applied the decision's bundle.
	Agents []*ent.Agent
}

// Get returns a change request with its diff, findings and decisions.
func (s *Service) Get(ctx context.Context, tenantID, id uuid.UUID) (*Detail, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	cr, err := s.db.ChangeRequest.Query().Where(changerequest.TenantID(tenantID), changerequest.ID(id)).
		WithTool(func(tq *ent.ToolQuery) { tq.WithUpstream(func(uq *ent.UpstreamQuery) { uq.WithGateway() }) }).
		WithApprovals(func(aq *ent.ApprovalQuery) { aq.Order(approval.ByCreatedAt()) }).Only(ctx)
	if err != nil {
		return nil, authz.DBError("change request "+id.String(), err)
	}
	d := &Detail{Summary: summaryOf(cr), Decisions: cr.Edges.Approvals}
	version := func(sha string) (*ent.ToolVersion, error) {
		if sha == "" {
			return nil, nil
		}
		v, err := s.db.ToolVersion.Query().Where(toolversion.ToolID(cr.ToolID), toolversion.Sha256(sha)).Only(ctx)
		if ent.IsNotFound(err) {
			return nil, nil
		}
		return v, err
	}
	from, err := version(cr.FromSha256)
	if err != nil {
		return nil, err
	}
	to, err := version(cr.ToSha256)
	if err != nil {
		return nil, err
	}
	if from != nil {
		d.From, d.FromFindings = Pretty(from.Definition), from.Findings
	}
	if to != nil {
		d.To, d.Findings = Pretty(to.Definition), to.Findings
		d.Summary.Findings = len(to.Findings)
	}
	// Show hidden characters in the diff: they are what a reviewer must not miss.
	d.Diff = SideBySide(scan.Visible(string(d.From)), scan.Visible(string(d.To)))
	d.Agents, err = s.db.Agent.Query().Where(agent.TenantID(tenantID), agent.GatewayID(cr.GatewayID), agent.Revoked(false)).
		Order(agent.ByHostname()).All(ctx)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// ToolDetail is a tool (or prompt, resource, template) with its history.
type ToolDetail struct {
	Tool     *ent.Tool
	Upstream string
	// Versions are the distinct definitions seen, newest first.
	Versions []*ent.ToolVersion
	// Requests are its change requests, newest first.
	Requests []*ent.ChangeRequest
}

// Tool returns a tool with its version history and change requests.
func (s *Service) Tool(ctx context.Context, tenantID, toolID uuid.UUID) (*ToolDetail, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	t, err := s.db.Tool.Query().Where(tool.TenantID(tenantID), tool.ID(toolID)).WithUpstream().Only(ctx)
	if err != nil {
		return nil, authz.DBError("tool "+toolID.String(), err)
	}
	d := &ToolDetail{Tool: t}
	if t.Edges.Upstream != nil {
		d.Upstream = t.Edges.Upstream.Name
	}
	if d.Versions, err = s.db.ToolVersion.Query().Where(toolversion.ToolID(t.ID)).
		Order(toolversion.ByFirstSeen(sql.OrderDesc())).Limit(100).All(ctx); err != nil {
		return nil, err
	}
	if d.Requests, err = s.db.ChangeRequest.Query().Where(changerequest.TenantID(tenantID), changerequest.ToolID(t.ID)).
		Order(changerequest.ByCreatedAt(sql.OrderDesc())).Limit(100).All(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// Pretty indents canonical JSON so a diff works line by line.
func Pretty(def []byte) []byte {
	var b bytes.Buffer
	if err := json.Indent(&b, def, "", "  "); err != nil {
		return def
	}
	return b.Bytes()
}

// SideBySide diffs two texts line by line into rows for a two-column view.
// Deleted lines followed by inserted ones are paired as changes.
func SideBySide(left, right string) []Line {
	dmp := diffmatchpatch.New()
	a, b, lines := dmp.DiffLinesToChars(left, right)
	diffs := dmp.DiffCharsToLines(dmp.DiffMain(a, b, false), lines)
	var out []Line
	ln, rn := 0, 0
	var dels []string
	flush := func(ins []string) {
		n := max(len(dels), len(ins))
		for i := range n {
			l := Line{Op: "change"}
			if i < len(dels) {
				ln++
				l.Left, l.LeftNo = dels[i], ln
			} else {
				l.Op = "insert"
			}
			if i < len(ins) {
				rn++
				l.Right, l.RightNo = ins[i], rn
			} else {
				l.Op = "delete"
			}
			out = append(out, l)
		}
		dels = nil
	}
	for _, d := range diffs {
		text := splitLines(d.Text)
		switch d.Type {
		case diffmatchpatch.DiffDelete:
			dels = append(dels, text...)
		case diffmatchpatch.DiffInsert:
			flush(text)
		case diffmatchpatch.DiffEqual:
			flush(nil)
			for _, t := range text {
				ln++
				rn++
				out = append(out, Line{Op: "equal", Left: t, Right: t, LeftNo: ln, RightNo: rn})
			}
		}
	}
	flush(nil)
	return out
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
