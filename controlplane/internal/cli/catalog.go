package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"connectrpc.com/connect"
	"github.com/peterbourgon/ff/v3/ffcli"

	adminv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1"
	"github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1/adminv1connect"
)

// maxServerJSON bounds a server.json file, as the control plane does.
const maxServerJSON = 1 << 20

// catalogCommand is "portcullis catalog": the tenant's approved servers.
func catalogCommand(leaf leafFunc, newFS func(string) *flag.FlagSet, g *globals) *ffcli.Command {
	cat := lazy(g, adminv1connect.NewCatalogServiceClient)
	imp := newFS("catalog import")
	impIntegrity := imp.String("integrity", "", "the npm archive's integrity, sha512-<base64> (npm view NAME@VERSION dist.integrity); server.json does not carry it")
	impBin := imp.String("bin", "", "the package's executable, a key of its package.json bin (default: its only one)")
	impRemote := imp.Bool("remote", false, "take the file's streamable-http remote, not its npm package")
	approve := newFS("catalog approve")
	approveComment := approve.String("comment", "", "why you approve (kept in the audit log)")
	reject := newFS("catalog reject")
	rejectComment := reject.String("comment", "", "why you reject (kept in the audit log)")
	decided := func(e *adminv1.CatalogEntry) error {
		_, err := fmt.Fprintf(g.out, "%s@%s: %s (%d/%d approvals)\n", e.GetName(), e.GetVersion(), e.GetStatus(), e.GetApprovals(), e.GetApprovalsRequired())
		return err
	}
	return &ffcli.Command{Name: "catalog", ShortUsage: "portcullis catalog <list|import|approve|reject|delete|policy|only>",
		ShortHelp: "the tenant's catalog of approved servers, from MCP Registry server.json files", Subcommands: []*ffcli.Command{
			leaf("catalog", "list", "", "list catalog entries", nil, 0, func(ctx context.Context, _ []string) error {
				r, err := cat.ListCatalog(ctx, connect.NewRequest(&adminv1.ListCatalogRequest{}))
				if err != nil {
					return err
				}
				return g.print(r.Msg, []string{"ID", "NAME", "VERSION", "RUNS", "NEEDS", "STATUS", "APPROVALS"}, func(row func(...any)) {
					for _, e := range r.Msg.GetEntries() {
						runs := e.GetUrl()
						if e.GetPackageName() != "" {
							runs = strings.Join(append([]string{e.GetPackageEcosystem() + ":" + e.GetPackageName() + "@" + e.GetPackageVersion()}, e.GetArgs()...), " ")
						}
						var needs []string
						for _, c := range e.GetCredentials() {
							n := c.GetKind() + ":" + c.GetName()
							if c.GetSecret() {
								n += " (secret)"
							}
							needs = append(needs, n)
						}
						row(e.GetId(), e.GetName(), e.GetVersion(), runs, strings.Join(needs, ", "), e.GetStatus(), fmt.Sprintf("%d/%d", e.GetApprovals(), e.GetApprovalsRequired()))
					}
				})
			}),
			leaf("catalog", "import", "[--integrity SHA] [--bin NAME] [--remote] FILE|-", "add a server.json's server to the catalog, pending approval", imp, 1, func(ctx context.Context, args []string) error {
				var raw []byte
				var err error
				if args[0] == "-" {
					raw, err = io.ReadAll(io.LimitReader(os.Stdin, maxServerJSON+1))
				} else {
					raw, err = os.ReadFile(args[0])
				}
				if err != nil {
					return fmt.Errorf("reading server.json: %w", err)
				}
				if len(raw) > maxServerJSON {
					return fmt.Errorf("server.json is larger than %d bytes", maxServerJSON)
				}
				r, err := cat.ImportServerJSON(ctx, connect.NewRequest(&adminv1.ImportServerJSONRequest{ServerJson: raw, Integrity: *impIntegrity, Bin: *impBin, Remote: *impRemote}))
				if err != nil {
					return err
				}
				e := r.Msg.GetEntry()
				return g.print(r.Msg, []string{"ID", "NAME", "VERSION", "STATUS"}, func(row func(...any)) { row(e.GetId(), e.GetName(), e.GetVersion(), e.GetStatus()) })
			}),
			leaf("catalog", "approve", "[--comment TEXT] ID", "approve a pending entry (not one you added)", approve, 1, func(ctx context.Context, args []string) error {
				r, err := cat.DecideCatalogEntry(ctx, connect.NewRequest(&adminv1.DecideCatalogEntryRequest{Id: args[0], Comment: *approveComment}))
				if err != nil {
					return err
				}
				return decided(r.Msg.GetEntry())
			}),
			leaf("catalog", "reject", "[--comment TEXT] ID", "reject a pending entry", reject, 1, func(ctx context.Context, args []string) error {
				r, err := cat.DecideCatalogEntry(ctx, connect.NewRequest(&adminv1.DecideCatalogEntryRequest{Id: args[0], Reject: true, Comment: *rejectComment}))
				if err != nil {
					return err
				}
				return decided(r.Msg.GetEntry())
			}),
			leaf("catalog", "policy", "", "show whether upstreams may only run approved catalog entries", nil, 0, func(ctx context.Context, _ []string) error {
				r, err := cat.GetCatalogPolicy(ctx, connect.NewRequest(&adminv1.GetCatalogPolicyRequest{}))
				if err != nil {
					return err
				}
				return g.print(r.Msg, []string{"CATALOG ONLY"}, func(row func(...any)) { row(onOff(r.Msg.GetCatalogOnly())) })
			}),
			leaf("catalog", "only", "on|off", "let upstreams run only approved catalog entries, or not (owner)", nil, 1, func(ctx context.Context, args []string) error {
				if args[0] != "on" && args[0] != "off" {
					return fmt.Errorf("give on or off, not %q", args[0])
				}
				r, err := cat.SetCatalogPolicy(ctx, connect.NewRequest(&adminv1.SetCatalogPolicyRequest{CatalogOnly: args[0] == "on"}))
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(g.out, "catalog only: %s\n", onOff(r.Msg.GetCatalogOnly()))
				return err
			}),
			leaf("catalog", "delete", "ID", "remove an entry (upstreams added from it keep running it)", nil, 1, func(ctx context.Context, args []string) error {
				if _, err := cat.DeleteCatalogEntry(ctx, connect.NewRequest(&adminv1.DeleteCatalogEntryRequest{Id: args[0]})); err != nil {
					return err
				}
				_, err := fmt.Fprintln(g.out, "deleted")
				return err
			}),
		}}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
