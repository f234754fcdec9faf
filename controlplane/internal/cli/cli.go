// Package cli is the `portcullis` admin command line: tenants, gateways,
// enrollment tokens, upstreams and tools, on top of the admin API. It
// authenticates with an API key (PORTCULLIS_API_KEY) created in the console.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/portcullis-mcp/portcullis/controlplane/internal/tenant"
	"github.com/portcullis-mcp/portcullis/ent/schematype"
	adminv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1"
)

type globals struct {
	server, apiKey, output string
	timeout                time.Duration
	out                    io.Writer
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", "http://127.0.0.1:8080", "control plane URL (env PORTCULLIS_SERVER)")
	fs.StringVar(&g.apiKey, "api-key", "", "API key, created in the console under API keys (env PORTCULLIS_API_KEY)")
	fs.StringVar(&g.output, "output", "table", "output format: table or json")
	fs.DurationVar(&g.timeout, "timeout", 30*time.Second, "time limit for the request")
}

func (g *globals) auth() connect.Option {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+g.apiKey)
			return next(ctx, req)
		}
	}))
}

func (g *globals) check() error {
	if g.apiKey == "" {
		return errors.New("no API key: set PORTCULLIS_API_KEY or --api-key (create one in the console under API keys)")
	}
	if g.output != "table" && g.output != "json" {
		return fmt.Errorf("--output %q: use table or json", g.output)
	}
	return nil
}

// maxManifest bounds a pins manifest read from a file (the API enforces its own limit too).
const maxManifest = 4 << 20

// build assembles the command tree writing to out.
func build(out io.Writer) *ffcli.Command {
	g := &globals{out: out}
	newFS := func(name string) *flag.FlagSet {
		fs := flag.NewFlagSet("portcullis "+name, flag.ContinueOnError)
		g.register(fs)
		return fs
	}
	opts := []ff.Option{ff.WithEnvVarPrefix("PORTCULLIS")}
	leaf := func(parent, name, usage, help string, fs *flag.FlagSet, nargs int, exec func(ctx context.Context, args []string) error) *ffcli.Command {
		if fs == nil {
			fs = newFS(parent + " " + name)
		}
		return &ffcli.Command{Name: name, ShortUsage: "portcullis " + parent + " " + name + " " + usage, ShortHelp: help, FlagSet: fs, Options: opts,
			Exec: func(ctx context.Context, args []string) error {
				// nargs < 0 means at least -nargs arguments.
				if (nargs >= 0 && len(args) != nargs) || (nargs < 0 && len(args) < -nargs) {
					return fmt.Errorf("usage: portcullis %s %s %s", parent, name, usage)
				}
				if err := g.check(); err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, g.timeout)
				defer cancel()
				return explain(exec(ctx, args), g.server)
			}}
	}
	c := newClients(g)

	tenantCreate := newFS("tenants create")
	tenantName := tenantCreate.String("name", "", "display name (default: the slug)")
	upCreate := newFS("upstreams create")
	upGateway := upCreate.String("gateway", "", "gateway name or id (required)")
	upURL := upCreate.String("url", "", "Streamable HTTP URL of the MCP server")
	upCommand := upCreate.String("command", "", "stdio command to run on the gateway host (arguments after --)")
	upPackage := upCreate.String("package", "", "package gateways install, verify and run as a stdio server, npm:NAME@VERSION or go:MODULE@VERSION (arguments after --; needs --integrity)")
	upIntegrity := upCreate.String("integrity", "", "the --package archive's hash: npm's sha512-<base64> (npm view NAME@VERSION dist.integrity), a Go module's go.sum h1:<base64> (go mod download -json MODULE@VERSION)")
	upBin := upCreate.String("bin", "", "the --package executable: a key of its package.json bin (default: its only one), or a Go module's main package directory (default: the module root)")
	upCatalog := upCreate.String("from-catalog", "", "an approved catalog entry, NAME (its newest approved version) or NAME@VERSION: it says how the upstream runs")
	upLabels := upCreate.String("labels", "", "labels, key=value,key2=value2")
	upCred := upCreate.String("credential-ref", "", "where gateways find the upstream's credential: env:NAME or file:/path (sent as Authorization: Bearer); for a stdio command env:NAME, a variable it is given")
	upDeny := upCreate.String("deny", "", "what the upstream may not ask of clients, comma-separated: sampling, elicitation, roots (default: all allowed)")
	upAuth := newAuthFlags(upCreate)
	vsCreate := newFS("servers create")
	vsGateway := vsCreate.String("gateway", "", "gateway name or id (required)")
	vsUpstreams := vsCreate.String("upstreams", "", "upstream names, comma-separated (required)")
	vsUnprefixed := vsCreate.Bool("unprefixed", false, "expose tool and prompt names as the upstreams name them, without \"upstream__\" (refused when two upstreams offer one name)")
	var vsRenames stringList
	vsCreate.Var(&vsRenames, "rename", "expose one tool under another name: upstream/tool=name (repeatable)")
	chList := newFS("changes list")
	chStatus := chList.String("status", "pending", "pending, approved, rejected, superseded or all")
	chApprove := newFS("changes approve")
	chApproveComment := chApprove.String("comment", "", "why you approve (kept in the audit log)")
	chReject := newFS("changes reject")
	chRejectComment := chReject.String("comment", "", "why you reject (kept in the audit log)")
	pinsImport := newFS("pins import")
	keyComplete := newFS("signing-key complete")
	keyForce := keyComplete.Bool("force", false, "complete even though some agents have not applied the announcement (they must then be enrolled again)")
	printKey := func(k *adminv1.SigningKey) {
		fmt.Fprintf(g.out, "key %s", k.GetKeyId())
		if k.GetNextKeyId() != "" {
			fmt.Fprintf(g.out, ", rotating to %s", k.GetNextKeyId())
			if p := k.GetPendingAgents(); len(p) > 0 {
				fmt.Fprintf(g.out, "; not yet applied by: %s", strings.Join(p, ", "))
			} else {
				fmt.Fprint(g.out, "; every agent has it: ready to complete")
			}
		}
		fmt.Fprintln(g.out)
	}
	rotate := func(action string, force *bool) func(context.Context, []string) error {
		return func(ctx context.Context, _ []string) error {
			r, err := c.tenants.RotateSigningKey(ctx, connect.NewRequest(&adminv1.RotateSigningKeyRequest{Action: action, Force: force != nil && *force}))
			if err != nil {
				return err
			}
			if g.output == "json" {
				return g.print(r.Msg, nil, nil)
			}
			printKey(r.Msg.GetKey())
			return nil
		}
	}
	gwDelete := newFS("gateways delete")
	gwForce := gwDelete.Bool("force", false, "delete it even though agents are connected: their streams are cut and they must enroll again")
	tokCreate := newFS("tokens create")
	tokTTL := tokCreate.Duration("ttl", time.Hour, "how long the token stays valid (at most 720h)")
	tokUses := tokCreate.Int("uses", 1, "how many agents may enroll with the token (1-1000), e.g. the replicas of one gateway")

	root := &ffcli.Command{
		Name: "portcullis", ShortUsage: "portcullis <tenants|signing-key|gateways|agents|tokens|upstreams|servers|tools|changes|pins|keys|members|approvals|access|events> <subcommand> [flags]",
		Subcommands: []*ffcli.Command{
			{Name: "tenants", ShortUsage: "portcullis tenants <list|create>", ShortHelp: "tenants you belong to", Subcommands: []*ffcli.Command{
				leaf("tenants", "list", "", "list tenants", nil, 0, func(ctx context.Context, _ []string) error {
					r, err := c.tenants.ListTenants(ctx, connect.NewRequest(&adminv1.ListTenantsRequest{}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "SLUG", "NAME", "ROLE"}, func(row func(...any)) {
						for _, t := range r.Msg.GetTenants() {
							row(t.GetId(), t.GetSlug(), t.GetName(), roleName(t.GetRole()))
						}
					})
				}),
				leaf("tenants", "create", "[--name NAME] SLUG", "create a tenant owned by you (needs an owner key)", tenantCreate, 1, func(ctx context.Context, args []string) error {
					name := *tenantName
					if name == "" {
						name = args[0]
					}
					r, err := c.tenants.CreateTenant(ctx, connect.NewRequest(&adminv1.CreateTenantRequest{Name: name, Slug: args[0]}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "SLUG", "NAME"}, func(row func(...any)) {
						row(r.Msg.GetTenant().GetId(), r.Msg.GetTenant().GetSlug(), r.Msg.GetTenant().GetName())
					})
				}),
			}},
			{Name: "gateways", ShortUsage: "portcullis gateways <list|create|rename|delete>", ShortHelp: "gateways and their agents", Subcommands: []*ffcli.Command{
				leaf("gateways", "list", "", "list gateways with agents online and policy versions", nil, 0, func(ctx context.Context, _ []string) error {
					r, err := c.gateways.ListGateways(ctx, connect.NewRequest(&adminv1.ListGatewaysRequest{}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "NAME", "AGENTS ONLINE", "POLICY"}, func(row func(...any)) {
						for _, gw := range r.Msg.GetGateways() {
							online := 0
							for _, a := range gw.GetAgents() {
								if a.GetConnected() {
									online++
								}
							}
							row(gw.GetId(), gw.GetName(), fmt.Sprintf("%d/%d", online, len(gw.GetAgents())), fmt.Sprintf("v%d", gw.GetPolicyVersion()))
						}
					})
				}),
				leaf("gateways", "create", "NAME", "create a gateway", nil, 1, func(ctx context.Context, args []string) error {
					r, err := c.gateways.CreateGateway(ctx, connect.NewRequest(&adminv1.CreateGatewayRequest{Name: args[0]}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "NAME"}, func(row func(...any)) { row(r.Msg.GetGateway().GetId(), r.Msg.GetGateway().GetName()) })
				}),
				leaf("gateways", "rename", "GATEWAY NEW_NAME", "rename a gateway (agents, upstreams and client URLs stay)", nil, 2, func(ctx context.Context, args []string) error {
					id, err := c.gatewayID(ctx, args[0])
					if err != nil {
						return err
					}
					r, err := c.gateways.UpdateGateway(ctx, connect.NewRequest(&adminv1.UpdateGatewayRequest{GatewayId: id, Name: args[1]}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "NAME"}, func(row func(...any)) { row(r.Msg.GetGateway().GetId(), r.Msg.GetGateway().GetName()) })
				}),
				leaf("gateways", "delete", "[--force] GATEWAY", "delete a gateway with its upstreams, servers, rules, pins, tokens and agents (refused while agents are connected, unless --force)", gwDelete, 1, func(ctx context.Context, args []string) error {
					id, err := c.gatewayID(ctx, args[0])
					if err != nil {
						return err
					}
					r, err := c.gateways.DeleteGateway(ctx, connect.NewRequest(&adminv1.DeleteGatewayRequest{GatewayId: id, Force: *gwForce}))
					if err != nil {
						return err
					}
					if g.output == "json" {
						return g.print(r.Msg, nil, nil)
					}
					fmt.Fprintf(g.out, "Deleted gateway %s", args[0])
					if n := r.Msg.GetDisconnectedAgents(); n > 0 {
						fmt.Fprintf(g.out, "; %d connected agents were cut off (they keep their last policy until stopped)", n)
					}
					fmt.Fprintln(g.out, ".")
					return nil
				}),
			}},
			{Name: "signing-key", ShortUsage: "portcullis signing-key <show|start|complete|cancel>", ShortHelp: "the tenant's bundle-signing key and its rotation", Subcommands: []*ffcli.Command{
				leaf("signing-key", "show", "", "the current key id and a rotation under way (which agents have not applied it yet)", nil, 0, func(ctx context.Context, _ []string) error {
					r, err := c.tenants.GetSigningKey(ctx, connect.NewRequest(&adminv1.GetSigningKeyRequest{}))
					if err != nil {
						return err
					}
					if g.output == "json" {
						return g.print(r.Msg, nil, nil)
					}
					printKey(r.Msg.GetKey())
					return nil
				}),
				leaf("signing-key", "start", "", "start a rotation: a next key is announced in bundles signed by the current one", nil, 0, rotate("start", nil)),
				leaf("signing-key", "complete", "[--force]", "sign with the next key from now on; gateways that saw it retire the old one", keyComplete, 0, rotate("complete", keyForce)),
				leaf("signing-key", "cancel", "", "drop the announced next key", nil, 0, rotate("cancel", nil)),
			}},
			{Name: "agents", ShortUsage: "portcullis agents <list|revoke>", ShortHelp: "the running instances of a gateway", Subcommands: []*ffcli.Command{
				leaf("agents", "list", "GATEWAY", "list a gateway's agents: status, applied policy, certificate expiry", nil, 1, func(ctx context.Context, args []string) error {
					id, err := c.gatewayID(ctx, args[0])
					if err != nil {
						return err
					}
					r, err := c.gateways.GetGateway(ctx, connect.NewRequest(&adminv1.GetGatewayRequest{GatewayId: id}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "HOST", "STATUS", "POLICY", "CERTIFICATE EXPIRES"}, func(row func(...any)) {
						for _, a := range r.Msg.GetGateway().GetAgents() {
							state := "offline"
							switch {
							case a.GetRevoked():
								state = "revoked"
							case a.GetConnected():
								state = "online"
							}
							expires := "unknown"
							if a.GetCertExpiresAt() != nil {
								expires = a.GetCertExpiresAt().AsTime().Local().Format(time.DateTime)
							}
							row(a.GetId(), a.GetHostname(), state, fmt.Sprintf("v%d", a.GetAppliedVersion()), expires)
						}
					})
				}),
				leaf("agents", "revoke", "AGENT_ID", "revoke an agent for good: its streams are cut and its certificate refused (it keeps its last policy until stopped)", nil, 1, func(ctx context.Context, args []string) error {
					if _, err := c.gateways.RevokeAgent(ctx, connect.NewRequest(&adminv1.RevokeAgentRequest{AgentId: args[0]})); err != nil {
						return err
					}
					fmt.Fprintf(g.out, "Revoked agent %s.\n", args[0])
					return nil
				}),
			}},
			{Name: "tokens", ShortUsage: "portcullis tokens <create|list|revoke>", ShortHelp: "enrollment tokens for gateways", Subcommands: []*ffcli.Command{
				leaf("tokens", "create", "[--ttl 1h] [--uses 1] GATEWAY", "create an enrollment token for a gateway (name or id); --uses N lets N replicas enroll with it", tokCreate, 1, func(ctx context.Context, args []string) error {
					id, err := c.gatewayID(ctx, args[0])
					if err != nil {
						return err
					}
					if *tokUses < 1 || *tokUses > 1000 {
						return fmt.Errorf("--uses %d: a token enrolls between 1 and 1000 agents", *tokUses)
					}
					r, err := c.gateways.CreateEnrollmentToken(ctx, connect.NewRequest(&adminv1.CreateEnrollmentTokenRequest{GatewayId: id, TtlSeconds: int64(tokTTL.Seconds()), MaxUses: int32(*tokUses)}))
					if err != nil {
						return err
					}
					if g.output == "json" {
						return g.print(r.Msg, nil, nil)
					}
					use := "one use"
					if *tokUses > 1 {
						use = fmt.Sprintf("%d uses", *tokUses)
					}
					fmt.Fprintf(g.out, "Enrollment token (%s, expires %s):\n\n  %s\n\nOn the gateway host:\n\n  portcullis-gateway --control-plane %s --enroll-token %s\n",
						use, r.Msg.GetExpiresAt().AsTime().Local().Format(time.RFC1123), r.Msg.GetToken(), r.Msg.GetControlPlane(), r.Msg.GetToken())
					return nil
				}),
				leaf("tokens", "list", "GATEWAY", "list a gateway's enrollment tokens (never their secrets)", nil, 1, func(ctx context.Context, args []string) error {
					id, err := c.gatewayID(ctx, args[0])
					if err != nil {
						return err
					}
					r, err := c.gateways.ListEnrollmentTokens(ctx, connect.NewRequest(&adminv1.ListEnrollmentTokensRequest{GatewayId: id}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "CREATED", "EXPIRES", "USES", "STATE"}, func(row func(...any)) {
						for _, t := range r.Msg.GetTokens() {
							state := "usable"
							switch {
							case t.GetUses() >= t.GetMaxUses():
								state = "used up"
							case !t.GetUsable():
								state = "expired"
							}
							row(t.GetId(), t.GetCreatedAt().AsTime().Local().Format(time.DateTime), t.GetExpiresAt().AsTime().Local().Format(time.DateTime),
								fmt.Sprintf("%d/%d", t.GetUses(), t.GetMaxUses()), state)
						}
					})
				}),
				leaf("tokens", "revoke", "ID", "revoke an enrollment token: it enrolls no more agents (enrolled agents stay)", nil, 1, func(ctx context.Context, args []string) error {
					if _, err := c.gateways.RevokeEnrollmentToken(ctx, connect.NewRequest(&adminv1.RevokeEnrollmentTokenRequest{Id: args[0]})); err != nil {
						return err
					}
					fmt.Fprintf(g.out, "Revoked enrollment token %s.\n", args[0])
					return nil
				}),
			}},
			{Name: "upstreams", ShortUsage: "portcullis upstreams <list|create|update|delete>", ShortHelp: "upstream MCP servers", Subcommands: []*ffcli.Command{
				leaf("upstreams", "list", "", "list upstreams", nil, 0, func(ctx context.Context, _ []string) error {
					r, err := c.ups.ListUpstreams(ctx, connect.NewRequest(&adminv1.ListUpstreamsRequest{}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "NAME", "TRANSPORT", "AUTH", "TARGET", "REACHABLE", "ERROR"}, func(row func(...any)) {
						for _, u := range r.Msg.GetUpstreams() {
							target := u.GetUrl()
							switch {
							case u.GetCommand() != "":
								target = strings.Join(append([]string{u.GetCommand()}, u.GetArgs()...), " ")
							case u.GetPackageName() != "":
								target = strings.Join(append([]string{u.GetPackageEcosystem() + ":" + u.GetPackageName() + "@" + u.GetPackageVersion()}, u.GetArgs()...), " ")
							}
							if u.GetCatalogEntry() != "" {
								target += " (catalog " + u.GetCatalogEntry() + ")"
							}
							row(u.GetId(), u.GetName(), strings.ToLower(strings.TrimPrefix(u.GetTransport().String(), "TRANSPORT_")), u.GetAuthMode(), target, u.GetReachable(), u.GetLastError())
						}
					})
				}),
				leaf("upstreams", "create", "--gateway GW (--url URL | --command CMD | --package npm:NAME@VERSION --integrity SHA | --from-catalog NAME[@VERSION]) [-- ARGS...] NAME", "register an upstream MCP server on a gateway", upCreate, -1, func(ctx context.Context, args []string) error {
					if *upGateway == "" {
						return errors.New("--gateway is required")
					}
					if n := btoi(*upURL != "") + btoi(*upCommand != "") + btoi(*upPackage != "") + btoi(*upCatalog != ""); n != 1 {
						return errors.New("give exactly one of --url (Streamable HTTP), --command (stdio), --package (a verified package run as stdio) or --from-catalog")
					}
					id, err := c.gatewayID(ctx, *upGateway)
					if err != nil {
						return err
					}
					cmdArgs := commandArgs(args)
					up := &adminv1.Upstream{GatewayId: id, Name: args[0], Url: *upURL, Command: *upCommand, Args: cmdArgs, Labels: map[string]string{},
						CredentialRef: *upCred, CatalogEntry: *upCatalog}
					upAuth.apply(up)
					if err := setDeny(up, *upDeny); err != nil {
						return err
					}
					up.Transport = adminv1.Transport_TRANSPORT_STREAMABLE_HTTP
					switch {
					case *upCommand != "":
						up.Transport = adminv1.Transport_TRANSPORT_STDIO
					case *upPackage != "":
						if err := setPackage(up, *upPackage, *upIntegrity, *upBin); err != nil {
							return err
						}
					case *upCatalog != "":
						up.Transport = adminv1.Transport_TRANSPORT_UNSPECIFIED
						if len(cmdArgs) > 0 {
							return errors.New("a catalog entry gives the arguments: none may follow the name")
						}
					case len(cmdArgs) > 0:
						return errors.New("arguments after the name are for --command or --package only")
					}
					for _, kv := range strings.Split(*upLabels, ",") {
						if kv = strings.TrimSpace(kv); kv == "" {
							continue
						}
						k, v, ok := strings.Cut(kv, "=")
						if !ok {
							return fmt.Errorf("--labels: %q is not key=value", kv)
						}
						up.Labels[k] = v
					}
					r, err := c.ups.CreateUpstream(ctx, connect.NewRequest(&adminv1.CreateUpstreamRequest{Upstream: up}))
					if err != nil {
						return err
					}
					if err := g.print(r.Msg, []string{"ID", "NAME"}, func(row func(...any)) { row(r.Msg.GetUpstream().GetId(), r.Msg.GetUpstream().GetName()) }); err != nil {
						return err
					}
					if g.output == "table" {
						// Clients reach an upstream only through a virtual server.
						_, err = fmt.Fprintf(os.Stderr, "next: clients reach it once a virtual server serves it, e.g.\n  portcullis servers create --gateway %s --upstreams %s NAME\n", *upGateway, r.Msg.GetUpstream().GetName())
					}
					return err
				}),
			}},
			{Name: "servers", ShortUsage: "portcullis servers <list|create|update|delete>", ShortHelp: "virtual servers: the /mcp/{name} endpoints clients connect to", Subcommands: []*ffcli.Command{
				leaf("servers", "list", "", "list virtual servers", nil, 0, func(ctx context.Context, _ []string) error {
					r, err := c.vss.ListVirtualServers(ctx, connect.NewRequest(&adminv1.ListVirtualServersRequest{}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "NAME", "UPSTREAMS", "NAMES"}, func(row func(...any)) {
						for _, v := range r.Msg.GetVirtualServers() {
							row(v.GetId(), v.GetName(), strings.Join(v.GetUpstreams(), ","), schematype.Naming(v.GetUnprefixed(), len(v.GetRenames())))
						}
					})
				}),
				leaf("servers", "create", "--gateway GW --upstreams A,B [--unprefixed] [--rename up/tool=name]... NAME", "create a virtual server at /mcp/NAME on a gateway", vsCreate, 1, func(ctx context.Context, args []string) error {
					if *vsGateway == "" || *vsUpstreams == "" {
						return errors.New("--gateway and --upstreams are required")
					}
					id, err := c.gatewayID(ctx, *vsGateway)
					if err != nil {
						return err
					}
					req := &adminv1.CreateVirtualServerRequest{GatewayId: id, Name: args[0], Unprefixed: *vsUnprefixed}
					for _, u := range strings.Split(*vsUpstreams, ",") {
						if u = strings.TrimSpace(u); u != "" {
							req.Upstreams = append(req.Upstreams, u)
						}
					}
					for _, r := range vsRenames {
						rename, err := schematype.ParseToolRename(r)
						if err != nil {
							return fmt.Errorf("--rename: %w", err)
						}
						req.Renames = append(req.Renames, &adminv1.ToolRename{Upstream: rename.Upstream, Tool: rename.Tool, Name: rename.Name})
					}
					r, err := c.vss.CreateVirtualServer(ctx, connect.NewRequest(req))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "NAME"}, func(row func(...any)) { row(r.Msg.GetVirtualServer().GetId(), r.Msg.GetVirtualServer().GetName()) })
				}),
			}},
			{Name: "tools", ShortUsage: "portcullis tools <list|pin|unpin>", ShortHelp: "discovered tools and their approval", Subcommands: []*ffcli.Command{
				leaf("tools", "list", "", "list discovered tools", nil, 0, func(ctx context.Context, _ []string) error {
					r, err := c.tools.ListTools(ctx, connect.NewRequest(&adminv1.ListToolsRequest{}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "UPSTREAM", "KIND", "NAME", "STATUS"}, func(row func(...any)) {
						for _, t := range r.Msg.GetTools() {
							status := "awaiting approval"
							switch {
							case t.GetPinnedSha256() != "" && t.GetPinnedSha256() == t.GetLiveSha256():
								status = "approved"
							case t.GetPinnedSha256() != "":
								status = "drifted (quarantined)"
							}
							row(t.GetId(), t.GetUpstream(), t.GetKind(), t.GetName(), status)
						}
					})
				}),
				leaf("tools", "pin", "TOOL_ID", "approve the tool's current definition", nil, 1, func(ctx context.Context, args []string) error {
					_, err := c.tools.PinTool(ctx, connect.NewRequest(&adminv1.PinToolRequest{ToolId: args[0]}))
					if err == nil {
						fmt.Fprintln(g.out, "pinned")
					}
					return err
				}),
				leaf("tools", "unpin", "TOOL_ID", "withdraw approval; gateways hide the tool", nil, 1, func(ctx context.Context, args []string) error {
					_, err := c.tools.UnpinTool(ctx, connect.NewRequest(&adminv1.UnpinToolRequest{ToolId: args[0]}))
					if err == nil {
						fmt.Fprintln(g.out, "unpinned")
					}
					return err
				}),
			}},
			{Name: "changes", ShortUsage: "portcullis changes <list|show|approve|reject>", ShortHelp: "change requests: new, changed and removed tools awaiting review", Subcommands: []*ffcli.Command{
				leaf("changes", "list", "[--status pending]", "list change requests", chList, 0, func(ctx context.Context, _ []string) error {
					st := *chStatus
					if st == "all" {
						st = ""
					}
					r, err := c.changes.ListChangeRequests(ctx, connect.NewRequest(&adminv1.ListChangeRequestsRequest{Status: st}))
					if err != nil {
						return err
					}
					return g.print(r.Msg, []string{"ID", "TOOL", "CHANGE", "STATUS", "FINDINGS", "APPROVALS"}, func(row func(...any)) {
						for _, cr := range r.Msg.GetChangeRequests() {
							row(cr.GetId(), cr.GetGateway()+"/"+cr.GetUpstream()+"/"+cr.GetTool(), cr.GetKind(), cr.GetStatus(), cr.GetFindings(),
								fmt.Sprintf("%d/%d", cr.GetApprovals(), cr.GetApprovalsRequired()))
						}
					})
				}),
				leaf("changes", "show", "ID", "show a change request: findings and diff", nil, 1, func(ctx context.Context, args []string) error {
					r, err := c.changes.GetChangeRequest(ctx, connect.NewRequest(&adminv1.GetChangeRequestRequest{Id: args[0]}))
					if err != nil {
						return err
					}
					if g.output == "json" {
						return g.print(r.Msg, nil, nil)
					}
					cr := r.Msg.GetChangeRequest()
					fmt.Fprintf(g.out, "%s/%s/%s (%s): %s, %s (%d/%d approvals)\n", cr.GetGateway(), cr.GetUpstream(), cr.GetTool(), cr.GetItemKind(), cr.GetKind(), cr.GetStatus(), cr.GetApprovals(), cr.GetApprovalsRequired())
					for _, f := range r.Msg.GetFindings() {
						fmt.Fprintf(g.out, "  %-6s %-20s %s: %s\n", f.GetSeverity(), f.GetKind(), f.GetPath(), f.GetExcerpt())
					}
					for _, l := range r.Msg.GetDiff() {
						switch l.GetOp() {
						case "equal":
							fmt.Fprintf(g.out, "  %s\n", l.GetLeft())
						case "delete":
							fmt.Fprintf(g.out, "- %s\n", l.GetLeft())
						case "insert":
							fmt.Fprintf(g.out, "+ %s\n", l.GetRight())
						default:
							fmt.Fprintf(g.out, "- %s\n+ %s\n", l.GetLeft(), l.GetRight())
						}
					}
					return nil
				}),
				leaf("changes", "approve", "[--comment TEXT] ID", "approve a change request", chApprove, 1, func(ctx context.Context, args []string) error {
					r, err := c.changes.ApproveChange(ctx, connect.NewRequest(&adminv1.ApproveChangeRequest{Id: args[0], Comment: *chApproveComment}))
					if err != nil {
						return err
					}
					if cr := r.Msg.GetChangeRequest(); r.Msg.GetApplied() {
						fmt.Fprintf(g.out, "approved; policy v%d carries it\n", cr.GetPolicyVersion())
					} else {
						fmt.Fprintf(g.out, "approval recorded: %d of %d\n", cr.GetApprovals(), cr.GetApprovalsRequired())
					}
					return nil
				}),
				leaf("changes", "reject", "[--comment TEXT] ID", "reject a change request; the tool stays as approved", chReject, 1, func(ctx context.Context, args []string) error {
					_, err := c.changes.RejectChange(ctx, connect.NewRequest(&adminv1.RejectChangeRequest{Id: args[0], Comment: *chRejectComment}))
					if err == nil {
						fmt.Fprintln(g.out, "rejected")
					}
					return err
				}),
			}},
			{Name: "pins", ShortUsage: "portcullis pins <export|import>", ShortHelp: "approved tool definitions as a signed manifest, for GitOps", Subcommands: []*ffcli.Command{
				leaf("pins", "export", "", "print the signed pins manifest (JSON)", nil, 0, func(ctx context.Context, _ []string) error {
					r, err := c.changes.ExportPins(ctx, connect.NewRequest(&adminv1.ExportPinsRequest{}))
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(g.out, "%s\n", r.Msg.GetManifest())
					return err
				}),
				leaf("pins", "import", "FILE|-", "make the manifest's gateways hold exactly its pins", pinsImport, 1, func(ctx context.Context, args []string) error {
					var raw []byte
					var err error
					if args[0] == "-" {
						raw, err = io.ReadAll(io.LimitReader(os.Stdin, maxManifest+1))
					} else {
						raw, err = os.ReadFile(args[0])
					}
					if err != nil {
						return fmt.Errorf("reading the manifest: %w", err)
					}
					if len(raw) > maxManifest {
						return fmt.Errorf("the manifest is larger than %d bytes", maxManifest)
					}
					r, err := c.changes.ImportPins(ctx, connect.NewRequest(&adminv1.ImportPinsRequest{Manifest: raw}))
					if err != nil {
						return err
					}
					fmt.Fprintf(g.out, "imported: %d pinned, %d unpinned, %d unchanged\n", r.Msg.GetPinned(), r.Msg.GetUnpinned(), r.Msg.GetUnchanged())
					return nil
				}),
			}},
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
	edits := editCommands(leaf, newFS, g, c)
	for _, sc := range root.Subcommands {
		sc.Subcommands = append(sc.Subcommands, edits[sc.Name]...)
	}
	root.Subcommands = append(root.Subcommands, moreCommands(leaf, newFS, g, c)...)
	root.Subcommands = append(root.Subcommands, catalogCommand(leaf, newFS, g), connectionsCommand(leaf, newFS, g, c))
	for _, sc := range root.Subcommands {
		sc.Exec = func(context.Context, []string) error { return flag.ErrHelp }
	}
	return root
}

// Run runs one admin command; args start with the command name.
func Run(ctx context.Context, args []string, out io.Writer) error {
	return build(out).ParseAndRun(ctx, args)
}

// Commands names the admin commands, for the binary's dispatch.
func Commands() []string {
	var out []string
	for _, sc := range build(io.Discard).Subcommands {
		out = append(out, sc.Name)
	}
	return out
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// commandArgs are the arguments after an upstream's NAME, for --command,
// without the "--" that separates them from the flags.
func commandArgs(args []string) []string {
	out := args[1:]
	if len(out) > 0 && out[0] == "--" {
		out = out[1:]
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// setPackage makes up a package upstream of ref (ECOSYSTEM:NAME@VERSION).
func setPackage(up *adminv1.Upstream, ref, integrity, bin string) error {
	p, err := tenant.ParsePackageRef(ref)
	if err != nil {
		return fmt.Errorf("--%w", err)
	}
	if integrity == "" {
		return errors.New("--package needs --integrity: gateways run a package only if its archive has the hash you pin")
	}
	up.Transport, up.Url, up.Command = adminv1.Transport_TRANSPORT_PACKAGE, "", ""
	up.PackageEcosystem, up.PackageName, up.PackageVersion = p.Ecosystem, p.Name, p.Version
	up.PackageIntegrity, up.PackageBin = integrity, bin
	return nil
}

// setDeny sets what an upstream may not ask of clients from a --deny list;
// "none" or nothing allows everything.
func setDeny(up *adminv1.Upstream, list string) error {
	up.DenySampling, up.DenyElicitation, up.DenyRoots = false, false, false
	for _, d := range strings.Split(list, ",") {
		switch d = strings.TrimSpace(d); d {
		case "", "none":
		case "sampling":
			up.DenySampling = true
		case "elicitation":
			up.DenyElicitation = true
		case "roots":
			up.DenyRoots = true
		default:
			return fmt.Errorf("--deny: %q is not sampling, elicitation, roots or none", d)
		}
	}
	return nil
}
