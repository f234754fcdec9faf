// Package change runs the change-management workflow: discovery opens a
// ChangeRequest whenever a tool appears, changes or disappears; approvers
// approve or reject it; approval moves the pin and pushes a new bundle.
// Until then the gateway keeps the tool hidden (it enforces the old pin).
package change

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/audit"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/keyring"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/approval"
	"github.com/portcullis-mcp/portcullis/ent/changerequest"
	"github.com/portcullis-mcp/portcullis/ent/policyversion"
	"github.com/portcullis-mcp/portcullis/ent/tenant"
	"github.com/portcullis-mcp/portcullis/ent/tool"
	"github.com/portcullis-mcp/portcullis/ent/toolversion"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// MaxCommentLen bounds approval and request comments.
const MaxCommentLen = 2000

// Notifier is told when a gateway's pins changed.
type Notifier interface {
	GatewayChanged(ctx context.Context, gatewayID uuid.UUID) error
}

// Service approves and rejects change requests.
type Service struct {
	db     *ent.Client
	notify Notifier
	kek    keyring.KEK // opens tenants' signing keys, for pin manifests
	log    *slog.Logger
	now    func() time.Time
}

// New returns a Service.
func New(db *ent.Client, notify Notifier, kek keyring.KEK, log *slog.Logger) (*Service, error) {
	if db == nil || notify == nil || kek == nil {
		return nil, errors.New("change.New: db, notifier and key-encryption key are required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, notify: notify, kek: kek, log: log.With("component", "change"), now: time.Now}, nil
}

// Observe reconciles a tool's open change requests with its live and pinned
// hashes, inside the inventory transaction tx. It opens a request when the
// live definition differs from the pin (new tool or changed definition) or a
// pinned tool disappeared, keeps an identical pending request, and
// supersedes pending requests the new state makes moot.
func Observe(ctx context.Context, tx *ent.Client, t *ent.Tool, gatewayID uuid.UUID, requestedBy string, approvalsRequired int) (*ent.ChangeRequest, error) {
	var kind changerequest.Kind
	switch {
	case t.LiveSha256 == t.PinnedSha256:
		kind = ""
	case t.LiveSha256 == "":
		kind = changerequest.KindToolRemoved
	case t.PinnedSha256 == "":
		kind = changerequest.KindToolAdded
	default:
		kind = changerequest.KindToolChanged
	}
	kind = kindOf(t, kind)
	pending, err := tx.ChangeRequest.Query().
		Where(changerequest.ToolID(t.ID), changerequest.StatusEQ(changerequest.StatusPending)).All(ctx)
	if err != nil {
		return nil, err
	}
	for _, cr := range pending {
		if kind != "" && cr.Kind == kind && cr.ToSha256 == t.LiveSha256 && cr.FromSha256 == t.PinnedSha256 {
			return cr, nil // already asked
		}
	}
	if kind == "" {
		return nil, supersede(ctx, tx, pending, nil)
	}
	// A definition already rejected is not asked about again until it changes.
	rejected, err := tx.ChangeRequest.Query().Where(changerequest.ToolID(t.ID), changerequest.StatusEQ(changerequest.StatusRejected),
		changerequest.KindEQ(kind), changerequest.ToSha256(t.LiveSha256), changerequest.FromSha256(t.PinnedSha256)).Exist(ctx)
	if err != nil {
		return nil, err
	}
	if rejected {
		return nil, supersede(ctx, tx, pending, nil)
	}
	cr, err := tx.ChangeRequest.Create().SetTenantID(t.TenantID).SetToolID(t.ID).SetGatewayID(gatewayID).
		SetKind(kind).SetFromSha256(t.PinnedSha256).SetToSha256(t.LiveSha256).
		SetRequestedBy(requestedBy).SetApprovalsRequired(max(1, approvalsRequired)).Save(ctx)
	if err != nil {
		return nil, err
	}
	return cr, supersede(ctx, tx, pending, &cr.ID)
}

// kindOf names a request about a package upstream's dependency tree
// package_added, package_changed or package_removed.
func kindOf(t *ent.Tool, k changerequest.Kind) changerequest.Kind {
	if t.Kind != tool.KindPackage {
		return k
	}
	switch k {
	case changerequest.KindToolAdded:
		return changerequest.KindPackageAdded
	case changerequest.KindToolChanged:
		return changerequest.KindPackageChanged
	case changerequest.KindToolRemoved:
		return changerequest.KindPackageRemoved
	}
	return k
}

// Supersede closes every pending request of a tool, e.g. after an admin
// pinned it by hand.
func Supersede(ctx context.Context, tx *ent.Client, toolID uuid.UUID) error {
	pending, err := tx.ChangeRequest.Query().
		Where(changerequest.ToolID(toolID), changerequest.StatusEQ(changerequest.StatusPending)).All(ctx)
	if err != nil {
		return err
	}
	return supersede(ctx, tx, pending, nil)
}

func supersede(ctx context.Context, tx *ent.Client, crs []*ent.ChangeRequest, by *uuid.UUID) error {
	for _, cr := range crs {
		u := tx.ChangeRequest.UpdateOne(cr).SetStatus(changerequest.StatusSuperseded).SetNillableSupersededBy(by)
		if err := u.Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Propose opens a change request by hand, e.g. to roll a tool back to an
// earlier definition. Its author may not approve it.
func (s *Service) Propose(ctx context.Context, tenantID, toolID uuid.UUID, sha, comment string) (*ent.ChangeRequest, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleApprover); err != nil {
		return nil, err
	}
	if len(comment) > MaxCommentLen {
		return nil, authz.Invalid("comment is longer than %d bytes", MaxCommentLen)
	}
	if _, err := hex.DecodeString(sha); err != nil || (sha != "" && len(sha) != 64) {
		return nil, authz.Invalid("sha256 must be 64 hex characters (or empty to propose unpinning)")
	}
	t, err := s.db.Tool.Query().Where(tool.TenantID(tenantID), tool.ID(toolID)).WithUpstream().Only(ctx)
	if err != nil {
		return nil, authz.DBError("tool "+toolID.String(), err)
	}
	if sha == t.PinnedSha256 {
		return nil, authz.Invalid("tool %q is already pinned to %s", t.Name, short(sha))
	}
	kind := changerequest.KindToolChanged
	switch {
	case sha == "":
		kind = changerequest.KindToolRemoved
	case t.PinnedSha256 == "":
		kind = changerequest.KindToolAdded
	}
	kind = kindOf(t, kind)
	if sha != "" {
		ok, err := s.db.ToolVersion.Query().Where(toolversion.ToolID(t.ID), toolversion.Sha256(sha)).Exist(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("tool %q has no discovered version %s: %w", t.Name, short(sha), authz.ErrNotFound)
		}
	}
	var cr *ent.ChangeRequest
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		tn, err := tx.Tenant.Query().Where(tenant.ID(tenantID)).Only(ctx)
		if err != nil {
			return err
		}
		pending, err := tx.ChangeRequest.Query().Where(changerequest.ToolID(t.ID), changerequest.StatusEQ(changerequest.StatusPending)).All(ctx)
		if err != nil {
			return err
		}
		cr, err = tx.ChangeRequest.Create().SetTenantID(tenantID).SetToolID(t.ID).SetGatewayID(t.Edges.Upstream.GatewayID).
			SetKind(kind).SetFromSha256(t.PinnedSha256).SetToSha256(sha).SetRequestedBy(authz.Actor(ctx)).
			SetRequesterKey(authz.PrincipalKey(ctx)).SetComment(comment).SetApprovalsRequired(tn.ApprovalsRequired).Save(ctx)
		if err != nil {
			return authz.DBError("opening change request", err)
		}
		if err := supersede(ctx, tx, pending, &cr.ID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "change.propose", TargetType: "change_request",
			TargetID: cr.ID.String(), TargetName: t.Name, After: cr})
	})
	return cr, err
}

// Decision is the outcome of Approve or Reject.
type Decision struct {
	Request *ent.ChangeRequest
	// Applied is true when this decision closed the request.
	Applied bool
	// Approvals is the number of approvals recorded so far.
	Approvals int
}

// Approve records the caller's approval. When the request has the approvals
// it needs, the pin moves (or the tool is unpinned, for a removal) and a new
// bundle is compiled and pushed.
func (s *Service) Approve(ctx context.Context, tenantID, id uuid.UUID, comment string) (Decision, error) {
	return s.decide(ctx, tenantID, id, approval.DecisionApprove, comment)
}

// Reject closes the request: the tool stays as it was pinned (hidden, for a
// new or changed tool).
func (s *Service) Reject(ctx context.Context, tenantID, id uuid.UUID, comment string) (Decision, error) {
	return s.decide(ctx, tenantID, id, approval.DecisionReject, comment)
}

func (s *Service) decide(ctx context.Context, tenantID, id uuid.UUID, d approval.Decision, comment string) (Decision, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleApprover); err != nil {
		return Decision{}, err
	}
	if len(comment) > MaxCommentLen {
		return Decision{}, authz.Invalid("comment is longer than %d bytes", MaxCommentLen)
	}
	key := authz.PrincipalKey(ctx)
	if key == "" {
		return Decision{}, fmt.Errorf("%w: decisions need a user or an API key", authz.ErrPermissionDenied)
	}
	var out Decision
	var gatewayID uuid.UUID
	err := audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		cr, err := tx.ChangeRequest.Query().Where(changerequest.TenantID(tenantID), changerequest.ID(id)).WithTool().Only(ctx)
		if err != nil {
			return authz.DBError("change request "+id.String(), err)
		}
		if cr.Status != changerequest.StatusPending {
			return fmt.Errorf("%w: change request is already %s", authz.ErrConflict, cr.Status)
		}
		if d == approval.DecisionApprove && person(ctx, tx, cr.RequesterKey) == key {
			return fmt.Errorf("%w: you opened this change request (yourself or with one of your API keys), so someone else must approve it", authz.ErrPermissionDenied)
		}
		// One decision per person, whichever of their keys they use.
		prior, err := tx.Approval.Query().Where(approval.ChangeRequestID(cr.ID)).All(ctx)
		if err != nil {
			return err
		}
		approvers := map[string]bool{}
		for _, a := range prior {
			who := person(ctx, tx, a.ActorKey)
			if who == key {
				return fmt.Errorf("%w: you have already decided on this change request (yourself or with one of your API keys)", authz.ErrConflict)
			}
			if a.Decision == approval.DecisionApprove {
				approvers[who] = true
			}
		}
		if _, err := tx.Approval.Create().SetTenantID(tenantID).SetChangeRequestID(cr.ID).SetDecision(d).
			SetActorKey(key).SetActor(authz.Actor(ctx)).SetComment(comment).Save(ctx); err != nil {
			if ent.IsConstraintError(err) {
				return fmt.Errorf("%w: you have already decided on this change request", authz.ErrConflict)
			}
			return authz.DBError("recording decision", err)
		}
		if d == approval.DecisionApprove {
			approvers[key] = true
		}
		approvals := len(approvers)
		out.Approvals = approvals
		before := cr
		upd := tx.ChangeRequest.UpdateOne(cr)
		switch {
		case d == approval.DecisionReject:
			upd.SetStatus(changerequest.StatusRejected)
		case approvals >= cr.ApprovalsRequired:
			t := cr.Edges.Tool
			if t.PinnedSha256 != cr.FromSha256 {
				return fmt.Errorf("%w: the tool's pin changed since this request was opened", authz.ErrConflict)
			}
			served, err := servedArchive(ctx, tx, t, cr.ToSha256)
			if err != nil {
				return err
			}
			if served != nil {
				err = acceptArchive(ctx, tx, t, served)
			} else {
				err = tx.Tool.UpdateOneID(t.ID).SetPinnedSha256(cr.ToSha256).Exec(ctx)
			}
			if err != nil {
				return err
			}
			upd.SetStatus(changerequest.StatusApproved)
			gatewayID = cr.GatewayID
		default:
			out.Request = cr
			return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "change.approve", TargetType: "change_request",
				TargetID: cr.ID.String(), TargetName: cr.Edges.Tool.Name, Before: before, After: cr})
		}
		cr, err = upd.SetDecidedAt(s.now()).SetDecidedBy(authz.Actor(ctx)).Save(ctx)
		if err != nil {
			return err
		}
		out.Request, out.Applied = cr, true
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "change." + string(d), TargetType: "change_request",
			TargetID: cr.ID.String(), TargetName: before.Edges.Tool.Name, Before: before, After: cr})
	})
	if err != nil || gatewayID == uuid.Nil {
		return out, err
	}
	if err := s.notify.GatewayChanged(ctx, gatewayID); err != nil {
		return out, err
	}
	// Record which bundle carries the decision, so the console can show each agent's ACK of it.
	sys := viewer.System(ctx)
	pv, err := s.db.PolicyVersion.Query().Where(policyversion.GatewayID(gatewayID)).Order(policyversion.ByVersion(sql.OrderDesc())).First(sys)
	if ent.IsNotFound(err) {
		return out, nil // nothing compiled (a notifier that does not compile)
	} else if err != nil {
		return out, err
	}
	out.Request, err = s.db.ChangeRequest.UpdateOne(out.Request).SetPolicyVersion(pv.Version).Save(sys)
	return out, err
}

// served is a package archive a registry served without the upstream's
// pinned integrity, as the gateway reports it in place of the dependency
// tree it could not read.
type served struct {
	Name, Version, Integrity, Refused string
}

// servedArchive is the served archive a package request is about, or nil
// for a request about a dependency tree (or a tool).
func servedArchive(ctx context.Context, tx *ent.Client, t *ent.Tool, sha string) (*served, error) {
	if t.Kind != tool.KindPackage {
		return nil, nil
	}
	v, err := tx.ToolVersion.Query().Where(toolversion.ToolID(t.ID), toolversion.Sha256(sha)).Only(ctx)
	if err != nil {
		return nil, authz.DBError("the requested package version", err)
	}
	var a served
	if err := json.Unmarshal(v.Definition, &a); err != nil {
		return nil, fmt.Errorf("package tree %s: %w", short(sha), err)
	}
	if a.Refused == "" {
		return nil, nil
	}
	return &a, nil
}

// acceptArchive makes the served archive the pin of the package upstream,
// whose dependency tree keeps its pin: the gateway then installs the
// archive, and its tree is a change request of its own, diffed against the
// approved tree.
func acceptArchive(ctx context.Context, tx *ent.Client, t *ent.Tool, a *served) error {
	up, err := tx.Upstream.Get(ctx, t.UpstreamID)
	if err != nil {
		return authz.DBError("upstream", err)
	}
	if up.PackageName != a.Name || up.PackageVersion != a.Version {
		return fmt.Errorf("%w: the upstream's package changed since this request was opened", authz.ErrConflict)
	}
	tn, err := tx.Tenant.Get(ctx, t.TenantID)
	if err != nil {
		return authz.DBError("tenant", err)
	}
	if tn.CatalogOnly {
		return authz.Invalid("this tenant runs only servers from its approved catalog: a served archive is accepted by importing a catalog entry with its integrity, not by this request")
	}
	after, err := up.Update().SetPackageIntegrity(a.Integrity).SetCatalogEntry("").Save(ctx) // no longer the entry's archive
	if err != nil {
		return err
	}
	return audit.Record(ctx, tx, audit.Event{TenantID: t.TenantID, Action: "upstream.update", TargetType: "upstream",
		TargetID: up.ID.String(), TargetName: up.Name, Before: up, After: after})
}

// SetApprovalsRequired sets how many approvals new change requests need.
func (s *Service) SetApprovalsRequired(ctx context.Context, tenantID uuid.UUID, n int) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	if n < 1 || n > 10 {
		return authz.Invalid("approvals required must be between 1 and 10, not %d", n)
	}
	return audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		before, err := tx.Tenant.Get(ctx, tenantID)
		if err != nil {
			return authz.DBError("tenant", err)
		}
		after, err := tx.Tenant.UpdateOneID(tenantID).SetApprovalsRequired(n).Save(ctx)
		if err != nil {
			return authz.DBError("updating tenant", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "tenant.approval_policy", TargetType: "tenant",
			TargetID: tenantID.String(), TargetName: after.Name, Before: map[string]any{"approvals_required": before.ApprovalsRequired},
			After: map[string]any{"approvals_required": n}})
	})
}

// ApprovalsRequired returns the tenant's approval policy.
func (s *Service) ApprovalsRequired(ctx context.Context, tenantID uuid.UUID) (int, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return 0, err
	}
	t, err := s.db.Tenant.Get(ctx, tenantID)
	if err != nil {
		return 0, authz.DBError("tenant", err)
	}
	return t.ApprovalsRequired, nil
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	if sha == "" {
		return "(none)"
	}
	return sha
}

// person is the person behind a recorded principal key: a key recorded as
// "apikey:<id>" (before keys counted as the user who created them) is that
// user.
func person(ctx context.Context, tx *ent.Client, key string) string {
	id, ok := strings.CutPrefix(key, "apikey:")
	if !ok {
		return key
	}
	kid, err := uuid.Parse(id)
	if err != nil {
		return key
	}
	k, err := tx.APIKey.Get(viewer.System(ctx), kid)
	if err != nil || k.CreatedBy == uuid.Nil {
		return key
	}
	return "user:" + k.CreatedBy.String()
}
