// Package catalog keeps a tenant's catalog of approved MCP servers: each
// entry is one version of a server (an npm package at an exact version with
// its archive's integrity, or a remote URL) with the credentials it needs,
// imported from the MCP Registry's server.json format. An entry is approved
// like a change request (the tenant's number of approvals, never by the
// person who added it); admins add upstreams from approved entries.
package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	apiv0 "github.com/modelcontextprotocol/registry/pkg/api/v0"
	"github.com/modelcontextprotocol/registry/pkg/model"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/audit"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/authz"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/bound"
	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/catalogentry"
	"github.com/portcullis-mcp/portcullis/ent/schematype"
	"github.com/portcullis-mcp/portcullis/ent/viewer"
)

// Limits on what an import may carry.
const (
	MaxServerJSON    = 1 << 20
	MaxCommentLen    = 2000
	maxCredentials   = 32
	maxDescription   = 2000
	maxArgumentBytes = 1024
)

// nameRE is the MCP Registry's shape of server names (reverse DNS, one slash).
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$`)

// Service keeps the catalog.
type Service struct {
	db  *ent.Client
	log *slog.Logger
	now func() time.Time
}

// New returns a Service.
func New(db *ent.Client, log *slog.Logger) (*Service, error) {
	if db == nil {
		return nil, errors.New("catalog.New: db is required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, log: log.With("component", "catalog"), now: time.Now}, nil
}

// ImportOptions complete what server.json does not say.
type ImportOptions struct {
	// Integrity of the npm archive ("sha512-<base64>"): server.json has none.
	Integrity string
	// Bin is the package's executable, when it has several.
	Bin string
	// Remote takes the streamable-http remote over the npm package.
	Remote bool
}

// ImportServerJSON adds a pending entry from a server.json file.
func (s *Service) ImportServerJSON(ctx context.Context, tenantID uuid.UUID, raw []byte, opt ImportOptions) (*ent.CatalogEntry, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return nil, err
	}
	if len(raw) > MaxServerJSON {
		return nil, authz.Invalid("server.json is %d bytes; at most %d", len(raw), MaxServerJSON)
	}
	var sj apiv0.ServerJSON
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&sj); err != nil {
		return nil, authz.Invalid("server.json is not valid: %v", err)
	}
	draft, err := FromServerJSON(&sj, opt)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", authz.ErrInvalid, err)
	}
	tn, err := s.db.Tenant.Get(ctx, tenantID)
	if err != nil {
		return nil, authz.DBError("tenant", err)
	}
	var e *ent.CatalogEntry
	err = audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		prior, err := tx.CatalogEntry.Query().Where(catalogentry.TenantID(tenantID), catalogentry.Name(draft.Name), catalogentry.Version(draft.Version)).Only(ctx)
		if err == nil {
			return fmt.Errorf("%w: %s@%s is already in the catalog (%s); delete that entry to import it again", authz.ErrConflict, draft.Name, draft.Version, prior.Status)
		} else if !ent.IsNotFound(err) {
			return err
		}
		e, err = tx.CatalogEntry.Create().SetTenantID(tenantID).SetName(draft.Name).SetVersion(draft.Version).SetTitle(draft.Title).
			SetDescription(draft.Description).SetTransport(draft.Transport).SetURL(draft.URL).
			SetPackageEcosystem(draft.Package.Ecosystem).SetPackageName(draft.Package.Name).SetPackageVersion(draft.Package.Version).
			SetPackageIntegrity(draft.Package.Integrity).SetPackageBin(draft.Package.Bin).SetArgs(draft.Args).SetCredentials(draft.Credentials).
			SetSource("server.json").SetRequestedBy(bound.String(authz.Actor(ctx), 320)).SetRequesterKey(authz.PrincipalKey(ctx)).
			SetApprovalsRequired(max(1, tn.ApprovalsRequired)).Save(ctx)
		if err != nil {
			return authz.DBError("adding "+draft.Name+"@"+draft.Version, err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "catalog.import", TargetType: "catalog_entry",
			TargetID: e.ID.String(), TargetName: e.Name + "@" + e.Version, After: e})
	})
	return e, err
}

// Draft is an entry read from server.json, before it is stored.
type Draft struct {
	Name, Version, Title, Description string
	Transport                         catalogentry.Transport
	URL                               string
	Package                           tenant.PackageSpec
	Args                              []string
	Credentials                       []schematype.CatalogCredential
}

// FromServerJSON reads the entry a server.json describes: its npm package
// with stdio transport, or (when asked, or when it has no such package) its
// streamable-http remote. What Portcullis cannot run is refused with a
// reason, never guessed.
func FromServerJSON(sj *apiv0.ServerJSON, opt ImportOptions) (Draft, error) {
	d := Draft{Name: sj.Name, Version: sj.Version, Title: sj.Title, Description: sj.Description}
	switch {
	case len(d.Name) > 200 || !nameRE.MatchString(d.Name):
		return d, fmt.Errorf("name %q is not a server name (io.github.owner/name)", bound.String(d.Name, 200))
	case d.Version == "" || len(d.Version) > 255 || !utf8.ValidString(d.Version) || strings.ContainsAny(d.Version, " \t\r\n@"):
		return d, fmt.Errorf("version %q is empty, too long or not one word", bound.String(d.Version, 255))
	case len(d.Title) > 100 || !utf8.ValidString(d.Title):
		return d, errors.New("title is longer than 100 bytes or not UTF-8")
	case len(d.Description) > maxDescription || !utf8.ValidString(d.Description):
		return d, fmt.Errorf("description is longer than %d bytes or not UTF-8", maxDescription)
	}
	var pkg *model.Package
	for i := range sj.Packages {
		if p := &sj.Packages[i]; p.RegistryType == "npm" && p.Transport.Type == "stdio" {
			pkg = p
			break
		}
	}
	var remote *model.Transport
	for i := range sj.Remotes {
		if r := &sj.Remotes[i]; r.Type == "streamable-http" {
			remote = r
			break
		}
	}
	switch {
	case pkg != nil && !opt.Remote:
		return d, d.fromPackage(pkg, opt)
	case remote != nil:
		return d, d.fromRemote(remote)
	case opt.Remote:
		return d, errors.New("server.json has no streamable-http remote")
	}
	var offered []string
	for _, p := range sj.Packages {
		offered = append(offered, p.RegistryType+" package ("+p.Transport.Type+")")
	}
	for _, r := range sj.Remotes {
		offered = append(offered, r.Type+" remote")
	}
	if len(offered) == 0 {
		offered = []string{"nothing"}
	}
	return d, fmt.Errorf("server.json offers %s; Portcullis runs npm packages with stdio transport and streamable-http remotes", strings.Join(offered, ", "))
}

func (d *Draft) fromPackage(p *model.Package, opt ImportOptions) error {
	d.Transport = catalogentry.TransportPackage
	d.Package = tenant.PackageSpec{Ecosystem: "npm", Name: p.Identifier, Version: p.Version, Integrity: opt.Integrity, Bin: opt.Bin}
	if opt.Integrity == "" {
		return fmt.Errorf("server.json does not carry the npm archive's integrity: give it (npm view %s@%s dist.integrity)", p.Identifier, p.Version)
	}
	for _, a := range p.PackageArguments {
		args, err := argument(a)
		if err != nil {
			return err
		}
		d.Args = append(d.Args, args...)
	}
	for _, v := range p.EnvironmentVariables {
		if err := d.credential("env", v); err != nil {
			return err
		}
	}
	spec := tenant.UpstreamSpec{Name: "catalog", Transport: "package", Package: d.Package, Args: d.Args}
	return spec.Validate()
}

func (d *Draft) fromRemote(r *model.Transport) error {
	d.Transport = catalogentry.TransportStreamableHTTP
	url, err := substitute(r.URL, r.Variables)
	if err != nil {
		return fmt.Errorf("remote URL: %w", err)
	}
	d.URL = url
	for _, h := range r.Headers {
		if err := d.credential("header", h); err != nil {
			return err
		}
	}
	spec := tenant.UpstreamSpec{Name: "catalog", Transport: "streamable_http", URL: d.URL}
	return spec.Validate()
}

// credential records a variable or header the server needs. A value that
// is not secret and fixed in server.json cannot be set by a gateway, which
// passes only the one credential its upstream declares: it is refused.
func (d *Draft) credential(kind string, kv model.KeyValueInput) error {
	if kv.Name == "" || len(kv.Name) > 128 || len(kv.Description) > 1000 || !utf8.ValidString(kv.Name+kv.Description) {
		return fmt.Errorf("%s %q: name empty or too long, or description too long", kind, bound.String(kv.Name, 128))
	}
	if len(d.Credentials) == maxCredentials {
		return fmt.Errorf("more than %d environment variables and headers", maxCredentials)
	}
	d.Credentials = append(d.Credentials, schematype.CatalogCredential{Kind: kind, Name: kv.Name, Description: kv.Description,
		Secret: kv.IsSecret, Required: kv.IsRequired})
	return nil
}

// argument is what one package argument adds to the command line: fixed
// values only; an argument a person would have to fill in is refused if
// required and left out if not.
func argument(a model.Argument) ([]string, error) {
	value := a.Value
	if value == "" {
		value = a.Default
	}
	label := a.Name
	if label == "" {
		label = a.ValueHint
	}
	if strings.ContainsAny(value, "{}") || len(value) > maxArgumentBytes || len(a.Name) > maxArgumentBytes {
		return nil, fmt.Errorf("argument %q: its value %q uses variables or is too long; a catalog entry runs with fixed arguments", label, bound.String(value, 64))
	}
	switch {
	case a.Type == model.ArgumentTypePositional && value != "":
		return []string{value}, nil
	case a.Type == model.ArgumentTypeNamed && a.Name != "" && value != "":
		return []string{a.Name, value}, nil
	case a.IsRequired:
		return nil, fmt.Errorf("argument %q needs a value server.json does not give", label)
	}
	return nil, nil
}

// substitute fills a remote URL's {variables} with their defaults.
func substitute(url string, vars map[string]model.Input) (string, error) {
	var b strings.Builder
	for rest := url; ; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return "", fmt.Errorf("%q has an unclosed {", bound.String(url, 200))
		}
		name := rest[open+1 : open+end]
		v, ok := vars[name]
		if !ok || v.Default == "" {
			return "", fmt.Errorf("variable {%s} of %q has no default to fill it with", bound.String(name, 64), bound.String(url, 200))
		}
		b.WriteString(rest[:open])
		b.WriteString(v.Default)
		rest = rest[open+end+1:]
	}
}

// List returns the tenant's entries, newest first.
func (s *Service) List(ctx context.Context, tenantID uuid.UUID) ([]*ent.CatalogEntry, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return nil, err
	}
	return s.db.CatalogEntry.Query().Where(catalogentry.TenantID(tenantID)).
		Order(ent.Asc(catalogentry.FieldName), ent.Desc(catalogentry.FieldCreatedAt)).Limit(1000).All(ctx)
}

// Decide records the caller's approval (or rejection) of a pending entry.
// One rejection rejects it; with the approvals it needs it is approved, and
// the older approved versions of its name are superseded.
func (s *Service) Decide(ctx context.Context, tenantID, id uuid.UUID, reject bool, comment string) (*ent.CatalogEntry, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleApprover); err != nil {
		return nil, err
	}
	if len(comment) > MaxCommentLen || !utf8.ValidString(comment) {
		return nil, authz.Invalid("comment is longer than %d bytes or not UTF-8", MaxCommentLen)
	}
	key := authz.PrincipalKey(ctx)
	if key == "" {
		return nil, fmt.Errorf("%w: decisions need a user or an API key", authz.ErrPermissionDenied)
	}
	decision := "approve"
	if reject {
		decision = "reject"
	}
	var out *ent.CatalogEntry
	err := audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		e, err := tx.CatalogEntry.Query().Where(catalogentry.TenantID(tenantID), catalogentry.ID(id)).Only(ctx)
		if err != nil {
			return authz.DBError("catalog entry "+id.String(), err)
		}
		if e.Status != catalogentry.StatusPending {
			return fmt.Errorf("%w: catalog entry is already %s", authz.ErrPrecondition, e.Status)
		}
		if !reject && e.RequesterKey == key {
			return fmt.Errorf("%w: you added this entry (yourself or with one of your API keys), so someone else must approve it", authz.ErrPermissionDenied)
		}
		if slices.ContainsFunc(e.Decisions, func(d schematype.CatalogDecision) bool { return d.ActorKey == key }) {
			return fmt.Errorf("%w: you have already decided on this entry", authz.ErrConflict)
		}
		now := s.now()
		decisions := append(slices.Clone(e.Decisions), schematype.CatalogDecision{ActorKey: key, Actor: bound.String(authz.Actor(ctx), 320),
			Decision: decision, Comment: comment, At: now})
		approvals := Approvals(decisions)
		// Only if nobody decided since it was read: a concurrent rejection is never overwritten.
		upd := tx.CatalogEntry.Update().Where(catalogentry.ID(e.ID), catalogentry.StatusEQ(catalogentry.StatusPending),
			catalogentry.Revision(e.Revision)).SetDecisions(decisions).AddRevision(1)
		switch {
		case reject:
			upd.SetStatus(catalogentry.StatusRejected).SetDecidedAt(now)
		case approvals >= e.ApprovalsRequired:
			upd.SetStatus(catalogentry.StatusApproved).SetDecidedAt(now)
			if err := tx.CatalogEntry.Update().Where(catalogentry.TenantID(tenantID), catalogentry.Name(e.Name), catalogentry.IDNEQ(e.ID),
				catalogentry.StatusEQ(catalogentry.StatusApproved)).SetStatus(catalogentry.StatusSuperseded).Exec(ctx); err != nil {
				return err
			}
		}
		if n, err := upd.Save(ctx); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("%w: someone decided on this entry at the same time; look at it again", authz.ErrConflict)
		}
		if out, err = tx.CatalogEntry.Get(ctx, e.ID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "catalog." + decision, TargetType: "catalog_entry",
			TargetID: e.ID.String(), TargetName: e.Name + "@" + e.Version, Before: e, After: out})
	})
	return out, err
}

// Approvals counts the approvals among decisions.
func Approvals(decisions []schematype.CatalogDecision) int {
	n := 0
	for _, d := range decisions {
		if d.Decision == "approve" {
			n++
		}
	}
	return n
}

// Delete removes an entry; upstreams added from it keep what they run.
func (s *Service) Delete(ctx context.Context, tenantID, id uuid.UUID) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleAdmin); err != nil {
		return err
	}
	return audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		e, err := tx.CatalogEntry.Query().Where(catalogentry.TenantID(tenantID), catalogentry.ID(id)).Only(ctx)
		if err != nil {
			return authz.DBError("catalog entry "+id.String(), err)
		}
		if err := tx.CatalogEntry.DeleteOne(e).Exec(ctx); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "catalog.delete", TargetType: "catalog_entry",
			TargetID: e.ID.String(), TargetName: e.Name + "@" + e.Version, Before: e})
	})
}

// SetCatalogOnly says whether the tenant's upstreams may only run approved
// catalog entries (owner: it binds the admins).
func (s *Service) SetCatalogOnly(ctx context.Context, tenantID uuid.UUID, on bool) error {
	if err := authz.Require(ctx, tenantID, viewer.RoleOwner); err != nil {
		return err
	}
	return audit.WithTx(ctx, s.db, func(tx *ent.Client) error {
		before, err := tx.Tenant.Get(ctx, tenantID)
		if err != nil {
			return authz.DBError("tenant", err)
		}
		if err := tx.Tenant.UpdateOneID(tenantID).SetCatalogOnly(on).Exec(ctx); err != nil {
			return authz.DBError("updating tenant", err)
		}
		return audit.Record(ctx, tx, audit.Event{TenantID: tenantID, Action: "tenant.catalog_policy", TargetType: "tenant",
			TargetID: tenantID.String(), TargetName: before.Name, Before: map[string]any{"catalog_only": before.CatalogOnly},
			After: map[string]any{"catalog_only": on}})
	})
}

// CatalogOnly says whether the tenant's upstreams may only run approved catalog entries.
func (s *Service) CatalogOnly(ctx context.Context, tenantID uuid.UUID) (bool, error) {
	if err := authz.Require(ctx, tenantID, viewer.RoleViewer); err != nil {
		return false, err
	}
	t, err := s.db.Tenant.Get(ctx, tenantID)
	if err != nil {
		return false, authz.DBError("tenant", err)
	}
	return t.CatalogOnly, nil
}
