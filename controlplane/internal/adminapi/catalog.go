package adminapi

import (
	"context"

	"connectrpc.com/connect"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/catalog"
	"github.com/portcullis-mcp/portcullis/ent"
	"github.com/portcullis-mcp/portcullis/ent/catalogentry"
	adminv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1"
)

// CatalogEntryToProto converts a catalog entry.
func CatalogEntryToProto(e *ent.CatalogEntry) *adminv1.CatalogEntry {
	tr := adminv1.Transport_TRANSPORT_STREAMABLE_HTTP
	if e.Transport == catalogentry.TransportPackage {
		tr = adminv1.Transport_TRANSPORT_PACKAGE
	}
	out := &adminv1.CatalogEntry{Id: e.ID.String(), Name: e.Name, Version: e.Version, Title: e.Title, Description: e.Description,
		Transport: tr, Url: e.URL, PackageEcosystem: e.PackageEcosystem, PackageName: e.PackageName, PackageVersion: e.PackageVersion,
		PackageIntegrity: e.PackageIntegrity, PackageBin: e.PackageBin, Args: e.Args, Status: e.Status.String(), RequestedBy: e.RequestedBy,
		ApprovalsRequired: int32(e.ApprovalsRequired), Approvals: int32(catalog.Approvals(e.Decisions)), CreatedAt: ts(e.CreatedAt), DecidedAt: tsp(e.DecidedAt), Source: e.Source}
	for _, c := range e.Credentials {
		out.Credentials = append(out.Credentials, &adminv1.CatalogCredential{Kind: c.Kind, Name: c.Name, Description: c.Description, Secret: c.Secret, Required: c.Required})
	}
	for _, d := range e.Decisions {
		out.Decisions = append(out.Decisions, &adminv1.Decision{Decision: d.Decision, Actor: d.Actor, Comment: d.Comment, At: ts(d.At)})
	}
	return out
}

// ListCatalog implements adminv1connect.CatalogServiceHandler.
func (s *Server) ListCatalog(ctx context.Context, _ *connect.Request[adminv1.ListCatalogRequest]) (*connect.Response[adminv1.ListCatalogResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	es, err := s.cfg.Catalog.List(ctx, tid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &adminv1.ListCatalogResponse{}
	for _, e := range es {
		out.Entries = append(out.Entries, CatalogEntryToProto(e))
	}
	return connect.NewResponse(out), nil
}

// ImportServerJSON implements adminv1connect.CatalogServiceHandler.
func (s *Server) ImportServerJSON(ctx context.Context, req *connect.Request[adminv1.ImportServerJSONRequest]) (*connect.Response[adminv1.ImportServerJSONResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	e, err := s.cfg.Catalog.ImportServerJSON(ctx, tid, req.Msg.GetServerJson(), catalog.ImportOptions{
		Integrity: req.Msg.GetIntegrity(), Bin: req.Msg.GetBin(), Remote: req.Msg.GetRemote()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.ImportServerJSONResponse{Entry: CatalogEntryToProto(e)}), nil
}

// DecideCatalogEntry implements adminv1connect.CatalogServiceHandler.
func (s *Server) DecideCatalogEntry(ctx context.Context, req *connect.Request[adminv1.DecideCatalogEntryRequest]) (*connect.Response[adminv1.DecideCatalogEntryResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetId(), "id")
	if err != nil {
		return nil, err
	}
	e, err := s.cfg.Catalog.Decide(ctx, tid, id, req.Msg.GetReject(), req.Msg.GetComment())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.DecideCatalogEntryResponse{Entry: CatalogEntryToProto(e)}), nil
}

// DeleteCatalogEntry implements adminv1connect.CatalogServiceHandler.
func (s *Server) DeleteCatalogEntry(ctx context.Context, req *connect.Request[adminv1.DeleteCatalogEntryRequest]) (*connect.Response[adminv1.DeleteCatalogEntryResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID(req.Msg.GetId(), "id")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Catalog.Delete(ctx, tid, id); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.DeleteCatalogEntryResponse{}), nil
}

// GetCatalogPolicy implements adminv1connect.CatalogServiceHandler.
func (s *Server) GetCatalogPolicy(ctx context.Context, _ *connect.Request[adminv1.GetCatalogPolicyRequest]) (*connect.Response[adminv1.GetCatalogPolicyResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	on, err := s.cfg.Catalog.CatalogOnly(ctx, tid)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.GetCatalogPolicyResponse{CatalogOnly: on}), nil
}

// SetCatalogPolicy implements adminv1connect.CatalogServiceHandler.
func (s *Server) SetCatalogPolicy(ctx context.Context, req *connect.Request[adminv1.SetCatalogPolicyRequest]) (*connect.Response[adminv1.SetCatalogPolicyResponse], error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Catalog.SetCatalogOnly(ctx, tid, req.Msg.GetCatalogOnly()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return connect.NewResponse(&adminv1.SetCatalogPolicyResponse{CatalogOnly: req.Msg.GetCatalogOnly()}), nil
}
