// Package inventory records the tools gateways discover on their upstreams,
// their version history, and which definition of each tool is pinned.
package inventory

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/gowebpki/jcs"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/audit"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/bound"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/change"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/scan"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/schematype"
	"github.com/portcullis-mcp/portcullis/ent/tool"
	"github.com/portcullis-mcp/portcullis/ent/toolversion"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// Limits on what one inventory report may carry.
const (
	MaxUpstreamsPerReport = 256
	MaxToolsPerUpstream   = 4096 // per kind
	MaxDefinitionBytes    = 256 << 10
	MaxToolNameLen        = 128
	// MaxURILen bounds resource URIs and URI templates.
	MaxURILen = 1024
)

// ErrNotFound is returned for a tool or version that does not exist in the tenant.
var ErrNotFound = authz.ErrNotFound

// Notifier is told when a gateway's pins changed.
type Notifier interface {
	GatewayChanged(ctx context.Context, gatewayID uuid.UUID) error
}

// Service records inventory and pins.
type Service struct {
	db     *ent.Client
	notify Notifier
	log    *slog.Logger
	now    func() time.Time
}

// New returns a Service.
func New(db *ent.Client, notify Notifier, log *slog.Logger) (*Service, error) {
	if db == nil || notify == nil {
		return nil, errors.New("inventory.New: db and notifier are required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, notify: notify, log: log.With("component", "inventory"), now: time.Now}, nil
}

// ValidateTool checks a discovered tool reported by an agent: bounded, canonical, hash matching.
func ValidateTool(t *agentv1.DiscoveredTool) error { return Validate(tool.KindTool, t) }

// Validate checks a discovered item of kind k: bounded, canonical, hash matching.
func Validate(k tool.Kind, t *agentv1.DiscoveredTool) error {
	limit := MaxToolNameLen
	if k == tool.KindResource || k == tool.KindResourceTemplate || k == tool.KindPackage {
		limit = MaxURILen
	}
	if t.GetName() == "" || len(t.GetName()) > limit || !utf8.ValidString(t.GetName()) {
		return fmt.Errorf("%s name %q is empty, not UTF-8 or longer than %d", k, bound.String(t.GetName(), 200), limit)
	}
	def := t.GetDefinition()
	if len(def) == 0 || len(def) > MaxDefinitionBytes {
		return fmt.Errorf("tool %q: definition is empty or larger than %d bytes", t.GetName(), MaxDefinitionBytes)
	}
	canon, err := jcs.Transform(def)
	if err != nil {
		return fmt.Errorf("tool %q: definition is not valid JSON: %w", t.GetName(), err)
	}
	if !bytes.Equal(canon, def) {
		return fmt.Errorf("tool %q: definition is not in RFC 8785 canonical form", t.GetName())
	}
	sum := sha256.Sum256(def)
	if hex.EncodeToString(sum[:]) != t.GetSha256() {
		return fmt.Errorf("tool %q: sha256 does not match its definition", t.GetName())
	}
	return nil
}

// ApplyReport records an agent's inventory report. Unknown upstreams and
// invalid tools are skipped and logged; the rest is stored.
func (s *Service) ApplyReport(ctx context.Context, agent *ent.Agent, rep *agentv1.InventoryReport) error {
	if len(rep.GetUpstreams()) > MaxUpstreamsPerReport {
		return fmt.Errorf("inventory report has %d upstreams, at most %d allowed", len(rep.GetUpstreams()), MaxUpstreamsPerReport)
	}
	now := s.now()
	for _, ui := range rep.GetUpstreams() {
		items := map[tool.Kind][]*agentv1.DiscoveredTool{tool.KindTool: ui.GetTools(), tool.KindPrompt: ui.GetPrompts(),
			tool.KindResource: ui.GetResources(), tool.KindResourceTemplate: ui.GetResourceTemplates()}
		for k, l := range items {
			if len(l) > MaxToolsPerUpstream {
				return fmt.Errorf("upstream %q: %d %ss reported, at most %d allowed", ui.GetUpstream(), len(l), k, MaxToolsPerUpstream)
			}
		}
		up, err := s.db.Upstream.Query().Where(upstream.TenantID(agent.TenantID), upstream.GatewayID(agent.GatewayID), upstream.Name(ui.GetUpstream())).Only(ctx)
		if ent.IsNotFound(err) {
			s.log.Warn("inventory for unknown upstream ignored", "agent", agent.ID, "upstream", ui.GetUpstream())
			continue
		} else if err != nil {
			return err
		}
		if err := up.Update().SetReachable(ui.GetReachable()).SetLastError(bound.String(ui.GetError(), 4096)).Exec(ctx); err != nil {
			return err
		}
		// A package's dependency tree is reported before it runs: until it is
		// approved, it does not.
		if pkg := ui.GetPackage(); pkg != nil && up.Transport == upstream.TransportPackage {
			pkgs := map[tool.Kind][]*agentv1.DiscoveredTool{tool.KindPackage: {pkg}}
			if err := PackageIsUpstreams(pkg, up); err != nil {
				s.log.Warn("package in inventory ignored", "upstream", up.Name, "err", err)
			} else if err := s.applyUpstream(ctx, agent, up, pkgs, []tool.Kind{tool.KindPackage}, now); err != nil {
				return fmt.Errorf("upstream %q: %w", up.Name, err)
			}
		}
		if !ui.GetReachable() {
			continue // keep the last known tools of an unreachable upstream
		}
		if err := s.applyUpstream(ctx, agent, up, items, kinds, now); err != nil {
			return fmt.Errorf("upstream %q: %w", up.Name, err)
		}
	}
	return nil
}

// PackageTree is a package upstream's dependency tree, as gateways report it.
type PackageTree struct {
	Ecosystem    string   `json:"ecosystem"`
	Name         string   `json:"name"`
	Version      string   `json:"version"`
	Integrity    string   `json:"integrity"`
	Dependencies []string `json:"dependencies"`
	// Refused says why the gateway refused an archive a registry served
	// without the pinned hash; Integrity is then the served archive's, and
	// the dependencies are not known (the archive was never unpacked).
	Refused string `json:"refused,omitempty"`
}

// PackageIsUpstreams checks that a reported package tree is of the package
// the upstream is configured with now (a report made before a version bump
// reached the gateway is not).
func PackageIsUpstreams(dt *agentv1.DiscoveredTool, up *ent.Upstream) error {
	if len(dt.GetDefinition()) > MaxDefinitionBytes { // the rest of Validate follows in applyUpstream
		return fmt.Errorf("package tree is larger than %d bytes", MaxDefinitionBytes)
	}
	var pt PackageTree
	if err := json.Unmarshal(dt.GetDefinition(), &pt); err != nil {
		return fmt.Errorf("package tree: %w", err)
	}
	if dt.GetName() != up.PackageEcosystem+":"+up.PackageName || pt.Ecosystem != up.PackageEcosystem || pt.Name != up.PackageName ||
		pt.Version != up.PackageVersion || (pt.Integrity != up.PackageIntegrity) != (pt.Refused != "") {
		return fmt.Errorf("the tree of %s:%s@%s is not of the upstream's package %s:%s@%s", bound.String(pt.Ecosystem, 16),
			bound.String(pt.Name, 214), bound.String(pt.Version, 128), up.PackageEcosystem, up.PackageName, up.PackageVersion)
	}
	if pt.Refused != "" { // a served archive, whose integrity approving it makes the upstream's
		if len(pt.Dependencies) != 0 {
			return errors.New("a refused archive's tree lists dependencies")
		}
		return tenant.PackageSpec{Ecosystem: pt.Ecosystem, Name: pt.Name, Version: pt.Version, Integrity: pt.Integrity}.Validate()
	}
	return nil
}

// kinds an upstream lists, in the order they are applied.
var kinds = []tool.Kind{tool.KindTool, tool.KindPrompt, tool.KindResource, tool.KindResourceTemplate}

// applyUpstream records the upstream's items of the given kinds; those no
// longer listed are marked removed.
func (s *Service) applyUpstream(ctx context.Context, agent *ent.Agent, up *ent.Upstream, items map[tool.Kind][]*agentv1.DiscoveredTool, kinds []tool.Kind, now time.Time) error {
	tx, err := s.db.Tx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	db := tx.Client()
	tn, err := db.Tenant.Get(ctx, up.TenantID)
	if err != nil {
		return err
	}
	requestedBy := fmt.Sprintf("gateway agent %s", bound.String(agent.Hostname, 200))
	var others []string // the tenant's tool names, loaded when a new definition needs scanning
	for _, k := range kinds {
		seen := make(map[string]bool, len(items[k]))
		for _, dt := range items[k] {
			if err := Validate(k, dt); err != nil {
				s.log.Warn("invalid item in inventory ignored", "upstream", up.Name, "kind", k, "err", err)
				continue
			}
			if seen[dt.GetName()] {
				continue
			}
			seen[dt.GetName()] = true
			t, err := db.Tool.Query().Where(tool.UpstreamID(up.ID), tool.KindEQ(k), tool.Name(dt.GetName())).Only(ctx)
			switch {
			case ent.IsNotFound(err):
				t, err = db.Tool.Create().SetTenantID(up.TenantID).SetUpstreamID(up.ID).SetKind(k).SetName(dt.GetName()).
					SetLiveSha256(dt.GetSha256()).SetFirstSeen(now).SetLastSeen(now).Save(ctx)
			case err == nil:
				t, err = t.Update().SetLiveSha256(dt.GetSha256()).SetLastSeen(now).Save(ctx)
			}
			if err != nil {
				return err
			}
			n, err := db.ToolVersion.Update().Where(toolversion.ToolID(t.ID), toolversion.Sha256(dt.GetSha256())).SetLastSeen(now).Save(ctx)
			if err != nil {
				return err
			}
			if n == 0 {
				findings := []schematype.Finding{}
				if k != tool.KindPackage { // a dependency list reaches no model: nothing to scan
					if others == nil {
						if others, err = db.Tool.Query().Where(tool.TenantID(up.TenantID), tool.KindEQ(tool.KindTool)).Limit(5000).Unique(true).Select(tool.FieldName).Strings(ctx); err != nil {
							return err
						}
					}
					if findings, err = Findings(dt.GetDefinition(), dt.GetName(), others); err != nil {
						return err
					}
				}
				if err := db.ToolVersion.Create().SetTenantID(up.TenantID).SetToolID(t.ID).SetSha256(dt.GetSha256()).
					SetDefinition(dt.GetDefinition()).SetFindings(findings).SetFirstSeen(now).SetLastSeen(now).Exec(ctx); err != nil {
					return err
				}
			}
			if _, err := change.Observe(ctx, db, t, up.GatewayID, requestedBy, tn.ApprovalsRequired); err != nil {
				return fmt.Errorf("%s %q: change request: %w", k, t.Name, err)
			}
		}
		// Items no longer listed are marked removed (history stays); a pinned one opens a removal request.
		names := make([]string, 0, len(seen))
		for n := range seen {
			names = append(names, n)
		}
		gone, err := db.Tool.Query().Where(tool.UpstreamID(up.ID), tool.KindEQ(k), tool.NameNotIn(names...), tool.LiveSha256NEQ("")).All(ctx)
		if err != nil {
			return err
		}
		for _, t := range gone {
			if t, err = t.Update().SetLiveSha256("").Save(ctx); err != nil {
				return err
			}
			if _, err := change.Observe(ctx, db, t, up.GatewayID, requestedBy, tn.ApprovalsRequired); err != nil {
				return fmt.Errorf("%s %q: change request: %w", k, t.Name, err)
			}
		}
	}
	return tx.Commit()
}

// Findings scans a tool definition; names of the tenant's other tools are
// looked for in its text.
func Findings(def []byte, self string, tenantTools []string) ([]schematype.Finding, error) {
	others := make([]string, 0, len(tenantTools))
	for _, n := range tenantTools {
		if n != self {
			others = append(others, n)
		}
	}
	fs, err := scan.Definition(def, others)
	if err != nil {
		return nil, err
	}
	out := make([]schematype.Finding, len(fs))
	for i, f := range fs {
		out[i] = schematype.Finding{Kind: f.Kind, Severity: string(f.Severity), Path: f.Path, Excerpt: f.Excerpt}
	}
	return out, nil
}

// Pin approves one definition (by hash) of a tool; the gateway will expose
// the tool only while its live definition has that hash.
func (s *Service) Pin(ctx context.Context, tenantID, toolID uuid.UUID, sha string) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	t, err := s.db.Tool.Query().Where(tool.TenantID(tenantID), tool.ID(toolID)).WithUpstream().Only(ctx)
	if ent.IsNotFound(err) {
		return fmt.Errorf("tool %s: %w", toolID, ErrNotFound)
	} else if err != nil {
		return err
	}
	ok, err := s.db.ToolVersion.Query().Where(toolversion.ToolID(t.ID), toolversion.Sha256(sha)).Exist(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("tool %q has no discovered version with sha256 %q: %w", t.Name, sha, ErrNotFound)
	}
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		after, err := tx.Tool.UpdateOneID(t.ID).SetPinnedSha256(sha).Save(ctx)
		if err != nil {
			return authz.DBError("pinning tool", err)
		}
		if err := change.Supersede(ctx, tx, t.ID); err != nil { // a manual pin answers any open request
			return err
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "tool.pin", TargetType: "tool",
			TargetID: t.ID.String(), TargetName: t.Name, Before: t, After: after})
	})
	if err != nil {
		return err
	}
	return s.notify.GatewayChanged(ctx, t.Edges.Upstream.GatewayID)
}

// PinLive pins the definition the tool currently has.
func (s *Service) PinLive(ctx context.Context, tenantID, toolID uuid.UUID) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	t, err := s.db.Tool.Query().Where(tool.TenantID(tenantID), tool.ID(toolID)).Only(ctx)
	if ent.IsNotFound(err) {
		return fmt.Errorf("tool %s: %w", toolID, ErrNotFound)
	} else if err != nil {
		return err
	}
	if t.LiveSha256 == "" {
		return fmt.Errorf("tool %q is not currently offered by its upstream; pin a version by hash instead", t.Name)
	}
	return s.Pin(ctx, tenantID, toolID, t.LiveSha256)
}

// Unpin withdraws approval: the gateway hides the tool and refuses calls.
func (s *Service) Unpin(ctx context.Context, tenantID, toolID uuid.UUID) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	t, err := s.db.Tool.Query().Where(tool.TenantID(tenantID), tool.ID(toolID)).WithUpstream().Only(ctx)
	if ent.IsNotFound(err) {
		return fmt.Errorf("tool %s: %w", toolID, ErrNotFound)
	} else if err != nil {
		return err
	}
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		after, err := tx.Tool.UpdateOneID(t.ID).SetPinnedSha256("").Save(ctx)
		if err != nil {
			return authz.DBError("unpinning tool", err)
		}
		if err := change.Supersede(ctx, tx, t.ID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "tool.unpin", TargetType: "tool",
			TargetID: t.ID.String(), TargetName: t.Name, Before: t, After: after})
	})
	if err != nil {
		return err
	}
	return s.notify.GatewayChanged(ctx, t.Edges.Upstream.GatewayID)
}

// FlowLabels are the data-flow labels a tool, prompt or resource may carry. A
// caller that has touched both private_data and untrusted_content (in any of
// its sessions, within the gateway's flow window) may not use an
// external_sink: that is how an injected instruction exfiltrates data.
var FlowLabels = []string{"private_data", "untrusted_content", "external_sink"}

// SetLabels replaces a tool's data-flow labels and pushes the change.
func (s *Service) SetLabels(ctx context.Context, tenantID, toolID uuid.UUID, labels []string) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	clean := make([]string, 0, len(labels))
	for _, l := range labels {
		if !slices.Contains(FlowLabels, l) {
			return authz.Invalid("unknown flow label %q: use private_data, untrusted_content or external_sink", bound.String(l, 64))
		}
		if !slices.Contains(clean, l) {
			clean = append(clean, l)
		}
	}
	slices.Sort(clean)
	t, err := s.db.Tool.Query().Where(tool.TenantID(tenantID), tool.ID(toolID)).WithUpstream().Only(ctx)
	if err != nil {
		return authz.DBError("tool "+toolID.String(), err)
	}
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		after, err := tx.Tool.UpdateOneID(t.ID).SetFlowLabels(clean).Save(ctx)
		if err != nil {
			return authz.DBError("labelling tool", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "tool.labels", TargetType: "tool",
			TargetID: t.ID.String(), TargetName: t.Name, Before: t, After: after})
	})
	if err != nil {
		return err
	}
	return s.notify.GatewayChanged(ctx, t.Edges.Upstream.GatewayID)
}
