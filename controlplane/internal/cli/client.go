package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1"
	"github.com/portcullis-mcp/portcullis/proto/gen/portcullis/admin/v1/adminv1connect"
)

type clients struct {
	tenants  adminv1connect.TenantServiceClient
	gateways adminv1connect.GatewayServiceClient
	ups      adminv1connect.UpstreamServiceClient
	vss      adminv1connect.VirtualServerServiceClient
	tools    adminv1connect.ToolServiceClient
	changes  adminv1connect.ChangeServiceClient
}

// newClients builds clients lazily bound to g's flags (read at call time).
func newClients(g *globals) *clients {
	return &clients{
		tenants:  lazy(g, adminv1connect.NewTenantServiceClient),
		gateways: lazy(g, adminv1connect.NewGatewayServiceClient),
		ups:      lazy(g, adminv1connect.NewUpstreamServiceClient),
		vss:      lazy(g, adminv1connect.NewVirtualServerServiceClient),
		tools:    lazy(g, adminv1connect.NewToolServiceClient),
		changes:  lazy(g, adminv1connect.NewChangeServiceClient),
	}
}

// lazy returns a client whose base URL and key come from the flags, which
// are parsed after the command tree is built.
func lazy[C any](g *globals, mk func(connect.HTTPClient, string, ...connect.ClientOption) C) C {
	return mk(&deferredHTTP{g: g}, "http://portcullis.invalid", g.auth())
}

// deferredHTTP rewrites the placeholder base URL to --server.
type deferredHTTP struct{ g *globals }

func (d *deferredHTTP) Do(r *http.Request) (*http.Response, error) {
	u, err := parseServer(d.g.server)
	if err != nil {
		return nil, err
	}
	r.URL.Scheme, r.URL.Host = u.Scheme, u.Host
	r.URL.Path = u.Path + r.URL.Path
	r.Host = u.Host
	return http.DefaultClient.Do(r)
}

// gatewayID resolves a gateway name or id.
func (c *clients) gatewayID(ctx context.Context, nameOrID string) (string, error) {
	if _, err := uuid.Parse(nameOrID); err == nil {
		return nameOrID, nil
	}
	r, err := c.gateways.ListGateways(ctx, connect.NewRequest(&adminv1.ListGatewaysRequest{}))
	if err != nil {
		return "", err
	}
	for _, g := range r.Msg.GetGateways() {
		if g.GetName() == nameOrID {
			return g.GetId(), nil
		}
	}
	return "", fmt.Errorf("no gateway named %q in this tenant (see `portcullis gateways list`)", nameOrID)
}

func roleName(r adminv1.Role) string {
	switch r {
	case adminv1.Role_ROLE_OWNER:
		return "owner"
	case adminv1.Role_ROLE_ADMIN:
		return "admin"
	case adminv1.Role_ROLE_APPROVER:
		return "approver"
	case adminv1.Role_ROLE_VIEWER:
		return "viewer"
	}
	return "none"
}

// print writes msg as JSON, or as a table of the rows fill adds.
func (g *globals) print(msg proto.Message, header []string, fill func(row func(...any))) error {
	if g.output == "json" {
		b, err := protojson.Marshal(msg)
		if err != nil {
			return err
		}
		// protojson's own spacing is deliberately unstable; indent it the
		// same way every time so scripts can rely on it.
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			return err
		}
		_, err = fmt.Fprintln(g.out, out.String())
		return err
	}
	tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
	for i, h := range header {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, h)
	}
	fmt.Fprintln(tw)
	fill(func(cells ...any) {
		for i, c := range cells {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c)
		}
		fmt.Fprintln(tw)
	})
	return tw.Flush()
}

// explain turns API errors into messages that say what to do.
func explain(err error, server string) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	switch ce.Code() {
	case connect.CodeUnauthenticated:
		return fmt.Errorf("%s (check PORTCULLIS_API_KEY: the key may be revoked)", ce.Message())
	case connect.CodePermissionDenied:
		return fmt.Errorf("permission denied: %s", ce.Message())
	case connect.CodeNotFound:
		return fmt.Errorf("not found: %s", ce.Message())
	case connect.CodeInvalidArgument:
		return fmt.Errorf("invalid input: %s", ce.Message())
	case connect.CodeAlreadyExists:
		return fmt.Errorf("already exists: %s", ce.Message())
	case connect.CodeUnavailable:
		return fmt.Errorf("cannot reach the control plane at %s: is it running? (--server, PORTCULLIS_SERVER): %s", server, ce.Message())
	case connect.CodeDeadlineExceeded:
		return fmt.Errorf("the control plane at %s did not answer in time (--timeout)", server)
	}
	return fmt.Errorf("%s: %s", ce.Code(), ce.Message())
}

func parseServer(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q must be an http(s) URL such as https://portcullis.example.com", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}
