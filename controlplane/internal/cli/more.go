package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/peterbourgon/ff/v3/ffcli"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-mcp/portcullis/ent/schematype"
	adminv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1"
	"github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1/adminv1connect"
)

// leafFunc builds a subcommand (Run's leaf).
type leafFunc func(parent, name, usage, help string, fs *flag.FlagSet, nargs int, exec func(ctx context.Context, args []string) error) *ffcli.Command

// people and access clients.
type moreClients struct {
	keys     adminv1connect.APIKeyServiceClient
	members  adminv1connect.MemberServiceClient
	policy   adminv1connect.PolicyServiceClient
	events   adminv1connect.TelemetryServiceClient
	changes  adminv1connect.ChangeServiceClient
	gateways func(ctx context.Context, nameOrID string) (string, error)
}

func parseRole(s string) (adminv1.Role, error) {
	switch strings.ToLower(s) {
	case "owner":
		return adminv1.Role_ROLE_OWNER, nil
	case "admin":
		return adminv1.Role_ROLE_ADMIN, nil
	case "approver":
		return adminv1.Role_ROLE_APPROVER, nil
	case "viewer":
		return adminv1.Role_ROLE_VIEWER, nil
	}
	return 0, fmt.Errorf("role %q: use owner, admin, approver or viewer", s)
}

func when(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().Local().Format(time.DateTime)
}

// moreCommands are the API keys, members, approval policy, access and
// telemetry commands.
func moreCommands(leaf leafFunc, newFS func(string) *flag.FlagSet, g *globals, c *clients) []*ffcli.Command {
	m := &moreClients{
		keys: lazy(g, adminv1connect.NewAPIKeyServiceClient), members: lazy(g, adminv1connect.NewMemberServiceClient),
		policy: lazy(g, adminv1connect.NewPolicyServiceClient), events: lazy(g, adminv1connect.NewTelemetryServiceClient),
		changes: c.changes, gateways: c.gatewayID,
	}
	keyCreate := newFS("keys create")
	keyRole := keyCreate.String("role", "viewer", "owner, admin, approver or viewer (at most your own)")
	clientKeyCreate := newFS("access keys create")
	clientKeyGroups := clientKeyCreate.String("groups", "", "groups of the key's principal, comma-separated (for rules on group:NAME)")
	ruleCreate := newFS("access rules create")
	ruleGateway := ruleCreate.String("gateway", "", "gateway name or id (required)")
	rulePrincipal := ruleCreate.String("principal", "*", `"*", apikey:NAME, user:SUBJECT or group:NAME`)
	ruleVS := ruleCreate.String("virtual-server", "*", "virtual server name or *")
	ruleDeny := ruleCreate.Bool("deny", false, "refuse what the rule matches (default: allow)")
	ruleCond := ruleCreate.String("condition", "", `CEL condition over args, principal and tool, e.g. args.path.startsWith("/tmp/")`)
	ruleDesc := ruleCreate.String("description", "", "why the rule exists")
	rulesList := newFS("access rules list")
	rulesGateway := rulesList.String("gateway", "", "gateway name or id (required)")
	limits := newFS("access limits")
	limitsPrincipal := limits.Uint("principal", 0, "calls a minute per principal on the gateway (0: no limit)")
	limitsTool := limits.Uint("tool", 0, "calls a minute per tool on the gateway (0: no limit)")
	idpSet := newFS("access idp set")
	idpGroups := idpSet.String("group-claim", "groups", "claim holding the user's groups")
	authSet := newFS("access require-keys")
	authOff := authSet.Bool("off", false, "let clients without a key in again")
	eventsList := newFS("events list")
	evDecision := eventsList.String("decision", "", "allow or deny (default: both)")
	evTool := eventsList.String("tool", "", "only this tool (upstream__tool)")
	evPrincipal := eventsList.String("principal", "", "only this principal")
	evUpstream := eventsList.String("upstream", "", "only this upstream")
	evLimit := eventsList.Int("limit", 50, "at most this many, newest first (1-500)")

	return []*ffcli.Command{
		{Name: "keys", ShortUsage: "portcullis keys <list|create|revoke>", ShortHelp: "API keys for the CLI and automation (they act as the person who created them)", Subcommands: []*ffcli.Command{
			leaf("keys", "list", "", "list the tenant's API keys", nil, 0, func(ctx context.Context, _ []string) error {
				r, err := m.keys.ListAPIKeys(ctx, connect.NewRequest(&adminv1.ListAPIKeysRequest{}))
				if err != nil {
					return err
				}
				return g.print(r.Msg, []string{"ID", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED"}, func(row func(...any)) {
					for _, k := range r.Msg.GetApiKeys() {
						row(k.GetId(), k.GetName(), roleName(k.GetRole()), when(k.GetCreatedAt()), when(k.GetLastUsedAt()), k.GetRevoked())
					}
				})
			}),
			leaf("keys", "create", "[--role ROLE] NAME", "create an API key; its secret is shown once", keyCreate, 1, func(ctx context.Context, args []string) error {
				role, err := parseRole(*keyRole)
				if err != nil {
					return err
				}
				r, err := m.keys.CreateAPIKey(ctx, connect.NewRequest(&adminv1.CreateAPIKeyRequest{Name: args[0], Role: role}))
				if err != nil {
					return err
				}
				return g.print(r.Msg, []string{"ID", "NAME", "ROLE", "SECRET (shown once)"}, func(row func(...any)) {
					row(r.Msg.GetApiKey().GetId(), r.Msg.GetApiKey().GetName(), roleName(r.Msg.GetApiKey().GetRole()), r.Msg.GetSecret())
				})
			}),
			leaf("keys", "revoke", "ID", "make an API key unusable at once", nil, 1, func(ctx context.Context, args []string) error {
				if _, err := m.keys.RevokeAPIKey(ctx, connect.NewRequest(&adminv1.RevokeAPIKeyRequest{ApiKeyId: args[0]})); err != nil {
					return err
				}
				_, err := fmt.Fprintf(g.out, "revoked %s\n", args[0])
				return err
			}),
		}},
		{Name: "members", ShortUsage: "portcullis members <list|invite|role|remove>", ShortHelp: "people of the tenant and their roles", Subcommands: []*ffcli.Command{
			leaf("members", "list", "", "list members and pending invitations", nil, 0, func(ctx context.Context, _ []string) error {
				r, err := m.members.ListMembers(ctx, connect.NewRequest(&adminv1.ListMembersRequest{}))
				if err != nil {
					return err
				}
				return g.print(r.Msg, []string{"ID", "EMAIL", "NAME", "ROLE", "PENDING", "SINCE"}, func(row func(...any)) {
					for _, p := range r.Msg.GetMembers() {
						row(p.GetId(), p.GetEmail(), p.GetName(), roleName(p.GetRole()), p.GetPending(), when(p.GetSince()))
					}
				})
			}),
			leaf("members", "invite", "EMAIL ROLE", "invite a person (they join at their first console login)", nil, 2, func(ctx context.Context, args []string) error {
				role, err := parseRole(args[1])
				if err != nil {
					return err
				}
				r, err := m.members.InviteMember(ctx, connect.NewRequest(&adminv1.InviteMemberRequest{Email: args[0], Role: role}))
				if err != nil {
					return err
				}
				return g.print(r.Msg, []string{"ID", "EMAIL", "ROLE", "PENDING"}, func(row func(...any)) {
					row(r.Msg.GetMember().GetId(), r.Msg.GetMember().GetEmail(), roleName(r.Msg.GetMember().GetRole()), r.Msg.GetMember().GetPending())
				})
			}),
			leaf("members", "role", "ID ROLE", "change a member's role", nil, 2, func(ctx context.Context, args []string) error {
				role, err := parseRole(args[1])
				if err != nil {
					return err
				}
				if _, err := m.members.SetMemberRole(ctx, connect.NewRequest(&adminv1.SetMemberRoleRequest{MemberId: args[0], Role: role})); err != nil {
					return err
				}
				_, err = fmt.Fprintf(g.out, "%s is now %s\n", args[0], roleName(role))
				return err
			}),
			leaf("members", "remove", "ID", "remove a member or cancel an invitation", nil, 1, func(ctx context.Context, args []string) error {
				if _, err := m.members.RemoveMember(ctx, connect.NewRequest(&adminv1.RemoveMemberRequest{MemberId: args[0]})); err != nil {
					return err
				}
				_, err := fmt.Fprintf(g.out, "removed %s\n", args[0])
				return err
			}),
		}},
		{Name: "approvals", ShortUsage: "portcullis approvals <get|set>", ShortHelp: "how many people must approve a change request", Subcommands: []*ffcli.Command{
			leaf("approvals", "get", "", "show the approvals a change needs", nil, 0, func(ctx context.Context, _ []string) error {
				r, err := m.changes.GetApprovalPolicy(ctx, connect.NewRequest(&adminv1.GetApprovalPolicyRequest{}))
				if err != nil {
					return err
				}
				return g.print(r.Msg, []string{"APPROVALS REQUIRED"}, func(row func(...any)) { row(r.Msg.GetApprovalsRequired()) })
			}),
			leaf("approvals", "set", "N", "require N approvals from N different people (owner)", nil, 1, func(ctx context.Context, args []string) error {
				var n int32
				if _, err := fmt.Sscan(args[0], &n); err != nil {
					return fmt.Errorf("%q: give a number of approvals", args[0])
				}
				if _, err := m.changes.SetApprovalPolicy(ctx, connect.NewRequest(&adminv1.SetApprovalPolicyRequest{ApprovalsRequired: n})); err != nil {
					return err
				}
				_, err := fmt.Fprintf(g.out, "a change now needs %d approvals\n", n)
				return err
			}),
		}},
		{Name: "access", ShortUsage: "portcullis access <keys|rules|idp|limits|require-keys>", ShortHelp: "who may call what through the gateways", Subcommands: []*ffcli.Command{
			{Name: "keys", ShortUsage: "portcullis access keys <list|create|revoke>", ShortHelp: "client keys MCP clients present (pcck_…)", Exec: helpOnly, Subcommands: []*ffcli.Command{
				leaf("access keys", "list", "", "list client keys", nil, 0, func(ctx context.Context, _ []string) error {
					r, err := m.policy.ListClientKeys(ctx, connect.NewRequest(&adminv1.ListClientKeysRequest{}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "NAME", "GROUPS", "CREATED", "REVOKED"}, func(row func(...any)) {
						for _, k := range r.Msg.GetKeys() {
							row(k.GetId(), k.GetName(), strings.Join(k.GetGroups(), ","), when(k.GetCreatedAt()), k.GetRevoked())
						}
					})
				}),
				leaf("access keys", "create", "[--groups G1,G2] NAME", "create a client key (principal apikey:NAME); its secret is shown once", clientKeyCreate, 1, func(ctx context.Context, args []string) error {
					var groups []string
					if *clientKeyGroups != "" {
						groups = strings.Split(*clientKeyGroups, ",")
					}
					r, err := m.policy.CreateClientKey(ctx, connect.NewRequest(&adminv1.CreateClientKeyRequest{Name: args[0], Groups: groups}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "NAME", "GROUPS", "SECRET (shown once)"}, func(row func(...any)) {
						row(r.Msg.GetKey().GetId(), r.Msg.GetKey().GetName(), strings.Join(r.Msg.GetKey().GetGroups(), ","), r.Msg.GetSecret())
					})
				}),
				leaf("access keys", "revoke", "ID", "revoke a client key (gateways refuse it with the next bundle)", nil, 1, func(ctx context.Context, args []string) error {
					if _, err := m.policy.RevokeClientKey(ctx, connect.NewRequest(&adminv1.RevokeClientKeyRequest{Id: args[0]})); err != nil {
						return err
					}
					_, err := fmt.Fprintf(g.out, "revoked %s\n", args[0])
					return err
				}),
			}},
			{Name: "rules", ShortUsage: "portcullis access rules <list|create|delete>", ShortHelp: "access rules of a gateway (first match decides)", Exec: helpOnly, Subcommands: []*ffcli.Command{
				leaf("access rules", "list", "--gateway GW", "list a gateway's rules in order", rulesList, 0, func(ctx context.Context, _ []string) error {
					gw, err := m.gateways(ctx, *rulesGateway)
					if err != nil {
						return err
					}
					r, err := m.policy.ListAccessRules(ctx, connect.NewRequest(&adminv1.ListAccessRulesRequest{GatewayId: gw}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "POS", "PRINCIPAL", "SERVER", "TOOLS", "EFFECT", "CONDITION"}, func(row func(...any)) {
						for _, x := range r.Msg.GetRules() {
							row(x.GetId(), x.GetPosition(), x.GetPrincipal(), x.GetVirtualServer(), x.GetToolPattern(), x.GetEffect(), x.GetCondition())
						}
					})
				}),
				leaf("access rules", "create", "--gateway GW [flags] TOOL_GLOB", "add a rule at the end of a gateway's rules", ruleCreate, 1, func(ctx context.Context, args []string) error {
					gw, err := m.gateways(ctx, *ruleGateway)
					if err != nil {
						return err
					}
					effect := "allow"
					if *ruleDeny {
						effect = "deny"
					}
					r, err := m.policy.CreateAccessRule(ctx, connect.NewRequest(&adminv1.CreateAccessRuleRequest{Rule: &adminv1.AccessRule{GatewayId: gw,
						Principal: *rulePrincipal, VirtualServer: *ruleVS, ToolPattern: args[0], Effect: effect, Condition: *ruleCond, Description: *ruleDesc}}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "PRINCIPAL", "SERVER", "TOOLS", "EFFECT", "CONDITION"}, func(row func(...any)) {
						x := r.Msg.GetRule()
						row(x.GetId(), x.GetPrincipal(), x.GetVirtualServer(), x.GetToolPattern(), x.GetEffect(), x.GetCondition())
					})
				}),
				leaf("access rules", "delete", "ID", "delete a rule", nil, 1, func(ctx context.Context, args []string) error {
					if _, err := m.policy.DeleteAccessRule(ctx, connect.NewRequest(&adminv1.DeleteAccessRuleRequest{Id: args[0]})); err != nil {
						return err
					}
					_, err := fmt.Fprintf(g.out, "deleted %s\n", args[0])
					return err
				}),
			}},
			{Name: "idp", ShortUsage: "portcullis access idp <get|set>", ShortHelp: "the identity provider whose access tokens (JWTs) MCP clients may present", Exec: helpOnly, Subcommands: []*ffcli.Command{
				leaf("access idp", "get", "", "show the client identity provider", nil, 0, func(ctx context.Context, _ []string) error {
					r, err := m.policy.GetClientIdentityProvider(ctx, connect.NewRequest(&adminv1.GetClientIdentityProviderRequest{}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ISSUER", "GROUP CLAIM"}, func(row func(...any)) { row(r.Msg.GetIssuer(), r.Msg.GetGroupClaim()) })
				}),
				leaf("access idp", "set", "[--group-claim CLAIM] ISSUER|none", "accept access tokens from this OpenID Provider (https), or none", idpSet, 1, func(ctx context.Context, args []string) error {
					issuer := args[0]
					if issuer == "none" {
						issuer = ""
					}
					if _, err := m.policy.SetClientIdentityProvider(ctx, connect.NewRequest(&adminv1.SetClientIdentityProviderRequest{Issuer: issuer, GroupClaim: *idpGroups})); err != nil {
						return err
					}
					_, err := fmt.Fprintf(g.out, "client identity provider: %q\n", issuer)
					return err
				}),
			}},
			leaf("access", "limits", "[--principal N] [--tool N] GATEWAY", "set a gateway's rate limits in calls a minute (0: none)", limits, 1, func(ctx context.Context, args []string) error {
				gw, err := m.gateways(ctx, args[0])
				if err != nil {
					return err
				}
				if _, err := m.policy.SetRateLimits(ctx, connect.NewRequest(&adminv1.SetRateLimitsRequest{GatewayId: gw,
					PrincipalPerMinute: uint32(*limitsPrincipal), ToolPerMinute: uint32(*limitsTool)})); err != nil {
					return err
				}
				_, err = fmt.Fprintf(g.out, "rate limits of %s: %d a minute per principal, %d per tool (0: none)\n", args[0], *limitsPrincipal, *limitsTool)
				return err
			}),
			leaf("access", "require-keys", "[--off] GATEWAY", "require a client key (or IdP token) of every MCP client of a gateway", authSet, 1, func(ctx context.Context, args []string) error {
				gw, err := m.gateways(ctx, args[0])
				if err != nil {
					return err
				}
				if _, err := m.policy.SetClientAuth(ctx, connect.NewRequest(&adminv1.SetClientAuthRequest{GatewayId: gw, Required: !*authOff})); err != nil {
					return err
				}
				_, err = fmt.Fprintf(g.out, "client credentials required on %s: %t\n", args[0], !*authOff)
				return err
			}),
		}},
		{Name: "events", ShortUsage: "portcullis events list [flags]", ShortHelp: "recent calls through the gateways (telemetry)", Subcommands: []*ffcli.Command{
			leaf("events", "list", "[flags]", "list recent call events, newest first", eventsList, 0, func(ctx context.Context, _ []string) error {
				if *evLimit < 1 || *evLimit > 500 {
					return fmt.Errorf("--limit %d: use 1 to 500", *evLimit)
				}
				r, err := m.events.ListCallEvents(ctx, connect.NewRequest(&adminv1.ListCallEventsRequest{Decision: *evDecision, Tool: *evTool,
					Principal: *evPrincipal, Upstream: *evUpstream, Limit: int32(*evLimit)}))
				if err != nil {
					return err
				}
				return g.print(r.Msg, []string{"TIME", "PRINCIPAL", "SERVER", "METHOD", "TOOL", "DECISION", "LATENCY µs", "REASON"}, func(row func(...any)) {
					for _, e := range r.Msg.GetEvents() {
						who := e.GetPrincipal()
						if who == "" {
							who = "(anonymous)"
						}
						row(when(e.GetTime()), who, e.GetVirtualServer(), e.GetMethod(), e.GetTool(), e.GetDecision(), e.GetLatencyMicros(), e.GetReason())
					}
				})
			}),
		}},
	}
}

func helpOnly(context.Context, []string) error { return flag.ErrHelp }

// editCommands are the update and delete subcommands of upstreams and
// servers, by command name.
func editCommands(leaf leafFunc, newFS func(string) *flag.FlagSet, g *globals, c *clients) map[string][]*ffcli.Command {
	upUpdate := newFS("upstreams update")
	uuGateway := upUpdate.String("gateway", "", "gateway name or id (required)")
	uuURL := upUpdate.String("url", "", "new Streamable HTTP URL (makes it an HTTP upstream)")
	uuCommand := upUpdate.String("command", "", "new stdio command (makes it a stdio upstream; arguments after --)")
	uuPackage := upUpdate.String("package", "", "new package, npm:NAME@VERSION or go:MODULE@VERSION (makes it a package upstream; arguments after --; needs --integrity)")
	uuIntegrity := upUpdate.String("integrity", "", "the --package archive's hash: sha512-<base64> (npm) or h1:<base64> (Go)")
	uuBin := upUpdate.String("bin", "", "the --package executable: a key of its package.json bin, or a Go module's main package directory")
	uuCatalog := upUpdate.String("from-catalog", "", "run an approved catalog entry: NAME (its newest approved version, to take a bump) or NAME@VERSION")
	uuCred := upUpdate.String("credential-ref", "", "new credential reference: env:NAME or file:/path, or none to drop it")
	uuDeny := upUpdate.String("deny", "", "what the upstream may not ask of clients, comma-separated (sampling, elicitation, roots), or none")
	uuAuth := newAuthFlags(upUpdate)
	upDelete := newFS("upstreams delete")
	udGateway := upDelete.String("gateway", "", "gateway name or id (required)")
	vsUpdate := newFS("servers update")
	vuGateway := vsUpdate.String("gateway", "", "gateway name or id (required)")
	vuUpstreams := vsUpdate.String("upstreams", "", "upstream names, comma-separated (required: the whole new list)")
	vuUnprefixed := vsUpdate.Bool("unprefixed", false, "expose names without \"upstream__\"")
	var vuRenames stringList
	vsUpdate.Var(&vuRenames, "rename", "expose one tool under another name: upstream/tool=name (repeatable; the whole new list)")
	vsDelete := newFS("servers delete")
	vdGateway := vsDelete.String("gateway", "", "gateway name or id (required)")

	findUpstream := func(ctx context.Context, gw, name string) (*adminv1.Upstream, error) {
		gid, err := c.gatewayID(ctx, gw)
		if err != nil {
			return nil, err
		}
		r, err := c.ups.ListUpstreams(ctx, connect.NewRequest(&adminv1.ListUpstreamsRequest{}))
		if err != nil {
			return nil, err
		}
		if u := onGateway(r.Msg.GetUpstreams(), gid, name); u != nil {
			return u, nil
		}
		return nil, fmt.Errorf("no upstream named %q on gateway %q", name, gw)
	}
	findServer := func(ctx context.Context, gw, name string) (*adminv1.VirtualServer, error) {
		gid, err := c.gatewayID(ctx, gw)
		if err != nil {
			return nil, err
		}
		r, err := c.vss.ListVirtualServers(ctx, connect.NewRequest(&adminv1.ListVirtualServersRequest{}))
		if err != nil {
			return nil, err
		}
		if v := onGateway(r.Msg.GetVirtualServers(), gid, name); v != nil {
			return v, nil
		}
		return nil, fmt.Errorf("no virtual server named %q on gateway %q", name, gw)
	}
	set := func(fs *flag.FlagSet, name string) bool {
		found := false
		fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
		return found
	}
	return map[string][]*ffcli.Command{
		"upstreams": {
			leaf("upstreams", "update", "--gateway GW [--url URL | --command CMD | --package npm:NAME@VERSION --integrity SHA | --from-catalog NAME[@VERSION]] [-- ARGS...] [--credential-ref REF|none] [--deny LIST|none] [--auth MODE ...] NAME",
				"change an upstream's settings (only the flags given); its pins stay and what it now offers is checked against them", upUpdate, -1,
				func(ctx context.Context, args []string) error {
					if *uuGateway == "" {
						return errors.New("--gateway is required")
					}
					if btoi(*uuURL != "")+btoi(*uuCommand != "")+btoi(*uuPackage != "")+btoi(*uuCatalog != "") > 1 {
						return errors.New("give at most one of --url, --command, --package or --from-catalog")
					}
					up, err := findUpstream(ctx, *uuGateway, args[0])
					if err != nil {
						return err
					}
					cmdArgs := commandArgs(args)
					if *uuURL != "" || *uuCommand != "" || *uuPackage != "" {
						up.CatalogEntry = "" // no longer what the catalog says
					}
					switch {
					case *uuCatalog != "":
						if len(cmdArgs) > 0 {
							return errors.New("a catalog entry gives the arguments: none may follow the name")
						}
						up.CatalogEntry = *uuCatalog
					case *uuURL != "":
						up.Transport, up.Url, up.Command, up.Args = adminv1.Transport_TRANSPORT_STREAMABLE_HTTP, *uuURL, "", nil
					case *uuCommand != "":
						up.Transport, up.Url, up.Command, up.Args = adminv1.Transport_TRANSPORT_STDIO, "", *uuCommand, cmdArgs
					case *uuPackage != "":
						if err := setPackage(up, *uuPackage, *uuIntegrity, *uuBin); err != nil {
							return err
						}
						up.Args = cmdArgs
					case len(cmdArgs) > 0:
						return errors.New("arguments after the name are for --command or --package only")
					}
					if up.GetTransport() != adminv1.Transport_TRANSPORT_PACKAGE {
						up.PackageEcosystem, up.PackageName, up.PackageVersion, up.PackageIntegrity, up.PackageBin = "", "", "", "", ""
					}
					if set(upUpdate, "credential-ref") {
						up.CredentialRef = strings.TrimPrefix(*uuCred, "none")
					}
					if set(upUpdate, "deny") {
						if err := setDeny(up, *uuDeny); err != nil {
							return err
						}
					}
					uuAuth.apply(up)
					r, err := c.ups.UpdateUpstream(ctx, connect.NewRequest(&adminv1.UpdateUpstreamRequest{Upstream: up}))
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(g.out, "updated upstream %s\n", r.Msg.GetUpstream().GetName())
					return err
				}),
			leaf("upstreams", "delete", "--gateway GW NAME", "delete an upstream no virtual server uses, with its pins and change requests", upDelete, 1,
				func(ctx context.Context, args []string) error {
					if *udGateway == "" {
						return errors.New("--gateway is required")
					}
					up, err := findUpstream(ctx, *udGateway, args[0])
					if err != nil {
						return err
					}
					if _, err := c.ups.DeleteUpstream(ctx, connect.NewRequest(&adminv1.DeleteUpstreamRequest{Id: up.GetId()})); err != nil {
						return err
					}
					_, err = fmt.Fprintf(g.out, "deleted upstream %s\n", args[0])
					return err
				}),
		},
		"servers": {
			leaf("servers", "update", "--gateway GW --upstreams A,B [--unprefixed] [--rename up/tool=name]... NAME", "replace a virtual server's upstreams, naming and renames (its URL stays)", vsUpdate, 1,
				func(ctx context.Context, args []string) error {
					if *vuGateway == "" || *vuUpstreams == "" {
						return errors.New("--gateway and --upstreams are required")
					}
					vs, err := findServer(ctx, *vuGateway, args[0])
					if err != nil {
						return err
					}
					req := &adminv1.UpdateVirtualServerRequest{Id: vs.GetId(), Unprefixed: *vuUnprefixed}
					for _, u := range strings.Split(*vuUpstreams, ",") {
						if u = strings.TrimSpace(u); u != "" {
							req.Upstreams = append(req.Upstreams, u)
						}
					}
					for _, r := range vuRenames {
						rename, err := schematype.ParseToolRename(r)
						if err != nil {
							return fmt.Errorf("--rename: %w", err)
						}
						req.Renames = append(req.Renames, &adminv1.ToolRename{Upstream: rename.Upstream, Tool: rename.Tool, Name: rename.Name})
					}
					r, err := c.vss.UpdateVirtualServer(ctx, connect.NewRequest(req))
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(g.out, "updated virtual server %s: %s\n", r.Msg.GetVirtualServer().GetName(), strings.Join(r.Msg.GetVirtualServer().GetUpstreams(), ", "))
					return err
				}),
			leaf("servers", "delete", "--gateway GW NAME", "delete a virtual server (its URL answers 404)", vsDelete, 1,
				func(ctx context.Context, args []string) error {
					if *vdGateway == "" {
						return errors.New("--gateway is required")
					}
					vs, err := findServer(ctx, *vdGateway, args[0])
					if err != nil {
						return err
					}
					if _, err := c.vss.DeleteVirtualServer(ctx, connect.NewRequest(&adminv1.DeleteVirtualServerRequest{Id: vs.GetId()})); err != nil {
						return err
					}
					_, err = fmt.Fprintf(g.out, "deleted virtual server %s\n", args[0])
					return err
				}),
		},
	}
}

// onGateway finds the item named name on the gateway among items, or nil.
func onGateway[T interface {
	comparable
	GetGatewayId() string
	GetName() string
}](items []T, gatewayID, name string) T {
	var none T
	for _, it := range items {
		if it.GetGatewayId() == gatewayID && it.GetName() == name {
			return it
		}
	}
	return none
}

// authFlags are the authorization flags of upstreams create and update.
type authFlags struct {
	fs                                                  *flag.FlagSet
	mode, clientID, secretRef, scopes, issuer, resource *string
}

func newAuthFlags(fs *flag.FlagSet) *authFlags {
	return &authFlags{fs: fs,
		mode: fs.String("auth", "", "whose credential requests for a client carry: static (--credential-ref for everybody; the default), none, "+
			"oauth_user (each person's own OAuth token, granted once through the gateway's consent link) or token_exchange (RFC 8693: the caller's token exchanged at the identity provider); "+
			"with a per-person mode --credential-ref serves only the gateway's discovery of the upstream's tools"),
		clientID:  fs.String("oauth-client-id", "", "the gateway's OAuth client id (oauth_user: empty registers one dynamically; token_exchange: required)"),
		secretRef: fs.String("oauth-client-secret-ref", "", "where gateways find the OAuth client's secret: env:NAME or file:/path"),
		scopes:    fs.String("oauth-scopes", "", "OAuth scopes to ask for, space-separated"),
		issuer:    fs.String("oauth-issuer", "", "the authorization server's issuer URL (default: oauth_user discovers it from the upstream; token_exchange uses the gateway's client identity provider)"),
		resource:  fs.String("oauth-resource", "", "the resource tokens are for (default: the upstream's URL)"),
	}
}

// apply sets on up the flags that were given; "none" clears a value. A
// mode that takes no OAuth client (static, none) clears its settings.
func (a *authFlags) apply(up *adminv1.Upstream) {
	if m := strings.TrimSpace(*a.mode); m == "static" || m == "none" {
		up.OauthClientId, up.OauthClientSecretRef, up.OauthScopes, up.OauthIssuer, up.OauthResource = "", "", nil, "", ""
	}
	a.fs.Visit(func(f *flag.Flag) {
		v := strings.TrimSpace(f.Value.String())
		if v == "none" && f.Name != "auth" {
			v = ""
		}
		switch f.Name {
		case "auth":
			up.AuthMode = v
		case "oauth-client-id":
			up.OauthClientId = v
		case "oauth-client-secret-ref":
			up.OauthClientSecretRef = v
		case "oauth-scopes":
			up.OauthScopes = strings.Fields(v)
		case "oauth-issuer":
			up.OauthIssuer = v
		case "oauth-resource":
			up.OauthResource = v
		}
	})
}
