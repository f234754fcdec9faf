// Command stdioprobe is a stdio MCP server that reports what it can reach on
// the gateway host: a file's contents, its environment, its user. The stdio
// confinement test runs it as a tenant admin's upstream would.
package main

import (
	"context"
	"log"
	"os"
	"strconv"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

func main() {
	srv := mcp.NewServer(&mcp.Implementation{Name: "stdioprobe", Version: "1"}, nil)
	type path struct {
		Path string `json:"path"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "read", Description: "Reads a file."}, func(_ context.Context, _ *mcp.CallToolRequest, in path) (*mcp.CallToolResult, any, error) {
		b, err := os.ReadFile(in.Path)
		if err != nil {
			return text("error: " + err.Error()), nil, nil
		}
		return text(string(b)), nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "env", Description: "Lists its environment."}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return text(strings.Join(os.Environ(), "\n")), nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "uid", Description: "Says its user ID."}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return text(strconv.Itoa(os.Getuid())), nil, nil
	})
	if err := srv.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatal(err)
	}
}
