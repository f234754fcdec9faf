package change

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/gowebpki/jcs"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/audit"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/keyring"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/policy"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/gateway"
	"github.com/portcullis-mcp/portcullis/ent/tool"
	"github.com/portcullis-mcp/portcullis/ent/toolversion"
	"github.com/portcullis-mcp/portcullis/ent/upstream"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// Manifest limits.
const (
	ManifestFormat   = 1
	MaxManifestBytes = 4 << 20
	maxManifestPins  = 50000
)

// Manifest is a tenant's pins as JSON, signed with the tenant's policy key
// (ed25519 over the RFC 8785 form of the manifest without its signature), so
// it can live in Git and be applied back without trusting the path it took.
type Manifest struct {
	Format     int           `json:"portcullis_pins"`
	TenantID   string        `json:"tenant_id"`
	Tenant     string        `json:"tenant"`
	ExportedAt time.Time     `json:"exported_at"`
	KeyID      string        `json:"key_id"`
	Gateways   []string      `json:"gateways"`
	Pins       []ManifestPin `json:"pins"`
	Signature  string        `json:"signature,omitempty"`
}

// ManifestPin approves one definition of one tool (or prompt, resource or
// resource template, as Kind says; empty means tool).
type ManifestPin struct {
	Gateway  string `json:"gateway"`
	Upstream string `json:"upstream"`
	Kind     string `json:"kind,omitempty"`
	Tool     string `json:"tool"`
	Sha256   string `json:"sha256"`
}

func (p ManifestPin) kind() tool.Kind {
	if p.Kind == "" {
		return tool.KindTool
	}
	return tool.Kind(p.Kind)
}

func (m Manifest) signedBytes() ([]byte, error) {
	m.Signature = ""
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return jcs.Transform(raw)
}

// ExportPins writes the tenant's pins as a signed manifest.
func (s *Service) ExportPins(ctx context.Context, tenantID uuid.UUID) ([]byte, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	// The signing key is not readable by viewers' queries of their own; this
	// read is scoped to the caller's tenant, checked above.
	tn, err := s.db.Tenant.Get(viewer.System(ctx), tenantID)
	if err != nil {
		return nil, authz.DBError("tenant", err)
	}
	gws, err := s.db.Gateway.Query().Where(gateway.TenantID(tenantID)).Order(gateway.ByName()).
		WithUpstreams(func(q *ent.UpstreamQuery) {
			q.Order(upstream.ByName()).WithTools(func(q *ent.ToolQuery) { q.Where(tool.PinnedSha256NEQ("")).Order(tool.ByKind(), tool.ByName()) })
		}).All(ctx)
	if err != nil {
		return nil, err
	}
	m := Manifest{Format: ManifestFormat, TenantID: tn.ID.String(), Tenant: tn.Slug, ExportedAt: s.now().UTC().Truncate(time.Second),
		KeyID: policy.KeyID(tn.SigningPublicKey), Gateways: []string{}, Pins: []ManifestPin{}}
	for _, g := range gws {
		m.Gateways = append(m.Gateways, g.Name)
		for _, u := range g.Edges.Upstreams {
			for _, t := range u.Edges.Tools {
				p := ManifestPin{Gateway: g.Name, Upstream: u.Name, Tool: t.Name, Sha256: t.PinnedSha256}
				if t.Kind != tool.KindTool {
					p.Kind = t.Kind.String()
				}
				m.Pins = append(m.Pins, p)
			}
		}
	}
	msg, err := m.signedBytes()
	if err != nil {
		return nil, err
	}
	priv, err := keyring.TenantKey(s.kek, tn.ID, tn.SigningPrivateKey)
	if err != nil {
		return nil, err
	}
	m.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, msg))
	return json.MarshalIndent(m, "", "  ")
}

// ImportResult counts what an import changed.
type ImportResult struct{ Pinned, Unpinned, Unchanged int }

// ImportPins verifies a manifest exported by this tenant and makes the pins
// of every gateway it names exactly the manifest's. It applies all or nothing.
func (s *Service) ImportPins(ctx context.Context, tenantID uuid.UUID, raw []byte) (ImportResult, error) {
	var res ImportResult
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return res, err
	}
	if len(raw) > MaxManifestBytes {
		return res, authz.Invalid("manifest is larger than %d bytes", MaxManifestBytes)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return res, authz.Invalid("manifest is not valid JSON: %v", err)
	}
	if m.Format != ManifestFormat {
		return res, authz.Invalid("manifest format %d is not supported (want %d)", m.Format, ManifestFormat)
	}
	if m.TenantID != tenantID.String() {
		return res, authz.Invalid("manifest belongs to tenant %q, not this one", m.Tenant)
	}
	if len(m.Pins) > maxManifestPins {
		return res, authz.Invalid("manifest has %d pins, at most %d allowed", len(m.Pins), maxManifestPins)
	}
	tn, err := s.db.Tenant.Get(viewer.System(ctx), tenantID)
	if err != nil {
		return res, authz.DBError("tenant", err)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return res, authz.Invalid("manifest signature is not base64")
	}
	msg, err := m.signedBytes()
	if err != nil {
		return res, err
	}
	if !ed25519.Verify(tn.SigningPublicKey, msg, sig) {
		return res, authz.Invalid("manifest signature does not verify with this tenant's key %s: it was altered or signed elsewhere", policy.KeyID(tn.SigningPublicKey))
	}
	want := map[uuid.UUID]string{} // tool → pin, for every tool of the named gateways
	var gatewayIDs []uuid.UUID
	for _, name := range m.Gateways {
		g, err := s.db.Gateway.Query().Where(gateway.TenantID(tenantID), gateway.Name(name)).
			WithUpstreams(func(q *ent.UpstreamQuery) { q.WithTools() }).Only(ctx)
		if err != nil {
			return res, authz.DBError(fmt.Sprintf("gateway %q", name), err)
		}
		gatewayIDs = append(gatewayIDs, g.ID)
		for _, u := range g.Edges.Upstreams {
			for _, t := range u.Edges.Tools {
				want[t.ID] = ""
			}
		}
	}
	tools := map[uuid.UUID]*ent.Tool{}
	for _, p := range m.Pins {
		if err := tool.KindValidator(p.kind()); err != nil {
			return res, authz.Invalid("pin for %s/%s/%s has unknown kind %q", p.Gateway, p.Upstream, p.Tool, p.Kind)
		}
		t, err := s.db.Tool.Query().Where(tool.TenantID(tenantID), tool.KindEQ(p.kind()), tool.Name(p.Tool),
			tool.HasUpstreamWith(upstream.Name(p.Upstream), upstream.HasGatewayWith(gateway.Name(p.Gateway)))).Only(ctx)
		if err != nil {
			return res, authz.DBError(fmt.Sprintf("tool %s/%s/%s", p.Gateway, p.Upstream, p.Tool), err)
		}
		if _, ok := want[t.ID]; !ok {
			return res, authz.Invalid("pin for %s/%s/%s names a gateway missing from the manifest's gateways", p.Gateway, p.Upstream, p.Tool)
		}
		ok, err := s.db.ToolVersion.Query().Where(toolversion.ToolID(t.ID), toolversion.Sha256(p.Sha256)).Exist(ctx)
		if err != nil {
			return res, err
		}
		if !ok {
			return res, fmt.Errorf("tool %s/%s/%s has never been seen with definition %s: %w", p.Gateway, p.Upstream, p.Tool, short(p.Sha256), authz.ErrNotFound)
		}
		want[t.ID] = p.Sha256
		tools[t.ID] = t
	}
	ids := make([]uuid.UUID, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		current, err := tx.Tool.Query().Where(tool.IDIn(ids...)).All(ctx)
		if err != nil {
			return err
		}
		for _, t := range current {
			pin := want[t.ID]
			switch {
			case t.PinnedSha256 == pin:
				res.Unchanged++
				continue
			case pin == "":
				res.Unpinned++
			default:
				res.Pinned++
			}
			if err := tx.Tool.UpdateOneID(t.ID).SetPinnedSha256(pin).Exec(ctx); err != nil {
				return err
			}
			if err := Supersede(ctx, tx, t.ID); err != nil {
				return err
			}
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "pins.import", TargetType: "tenant",
			TargetID: tenantID.String(), TargetName: tn.Name,
			After: map[string]any{"gateways": m.Gateways, "pinned": res.Pinned, "unpinned": res.Unpinned, "exported_at": m.ExportedAt}})
	})
	if err != nil {
		return res, err
	}
	for _, g := range gatewayIDs {
		if err := s.notify.GatewayChanged(ctx, g); err != nil {
			return res, err
		}
	}
	return res, nil
}
