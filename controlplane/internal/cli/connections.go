package cli

import (
	"context"
	"flag"
	"fmt"

	"connectrpc.com/connect"
	"github.com/peterbourgon/ff/v3/ffcli"

	adminv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1"
	"github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1/adminv1connect"
)

// connectionsCommand is "portcullis connections": people's authorizations
// at upstreams that act as each person.
func connectionsCommand(leaf leafFunc, newFS func(string) *flag.FlagSet, g *globals, c *clients) *ffcli.Command {
	conns := lazy(g, adminv1connect.NewConnectionServiceClient)
	list := newFS("connections list")
	listGateway := list.String("gateway", "", "only this gateway's (name or id)")
	return &ffcli.Command{Name: "connections", ShortUsage: "portcullis connections <list|revoke>",
		ShortHelp: "people's authorizations at upstreams that act as each person (oauth_user); the tokens stay in the gateways", Subcommands: []*ffcli.Command{
			leaf("connections", "list", "[--gateway GW]", "list connections, newest change first", list, 0, func(ctx context.Context, _ []string) error {
				req := &adminv1.ListConnectionsRequest{}
				if *listGateway != "" {
					id, err := c.gatewayID(ctx, *listGateway)
					if err != nil {
						return err
					}
					req.GatewayId = id
				}
				r, err := conns.ListConnections(ctx, connect.NewRequest(req))
				if err != nil {
					return err
				}
				return g.print(r.Msg, []string{"ID", "UPSTREAM", "PRINCIPAL", "UPSTREAM IDENTITY", "CONNECTED", "STATE", "SINCE"}, func(row func(...any)) {
					for _, x := range r.Msg.GetConnections() {
						row(x.GetId(), x.GetUpstream(), x.GetPrincipal(), x.GetUpstreamIdentity(), when(x.GetConnectedAt()), x.GetState(), when(x.GetChangedAt()))
					}
				})
			}),
			leaf("connections", "revoke", "ID", "revoke a person's authorization: the gateway deletes the grant, and the person is asked to consent again", nil, 1, func(ctx context.Context, args []string) error {
				r, err := conns.RevokeConnection(ctx, connect.NewRequest(&adminv1.RevokeConnectionRequest{Id: args[0]}))
				if err != nil {
					return err
				}
				x := r.Msg.GetConnection()
				_, err = fmt.Fprintf(g.out, "Revoked %s's authorization at %s; the gateway deletes it with its next policy.\n", x.GetPrincipal(), x.GetUpstream())
				return err
			}),
		}}
}
