#!/usr/bin/env node
// A small MCP client on the official TypeScript SDK, used by the end-to-end
// tests to drive the gateway as a real AI client would.
//
//   node mcp-client.mjs URL list                 → {"tools":[names...]}
//   node mcp-client.mjs URL call TOOL JSON-ARGS  → the CallToolResult
//   node mcp-client.mjs URL prompts              → {"prompts":[names...]}
//   node mcp-client.mjs URL resources            → {"resources":[uris...]}
//   node mcp-client.mjs URL read URI             → the ReadResourceResult
//   node mcp-client.mjs URL session JSON         → {"results":[CallToolResult...]} for
//                                                  [["tool", {args}], ...] called in order in one session
//
// MCP_BEARER, when set, is sent as "Authorization: Bearer <value>";
// MCP_TRACEPARENT as a W3C "traceparent" header.
// Prints one JSON document on stdout; exits 1 with the error on stderr.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, op, ...rest] = process.argv.slice(2);
if (!url || !op) {
  console.error("usage: mcp-client.mjs URL list|call TOOL JSON|prompts|resources|read URI|session JSON");
  process.exit(2);
}
const client = new Client({ name: "portcullis-e2e", version: "1.0.0" });
try {
  const headers = {};
  if (process.env.MCP_BEARER) headers.Authorization = `Bearer ${process.env.MCP_BEARER}`;
  if (process.env.MCP_TRACEPARENT) headers.traceparent = process.env.MCP_TRACEPARENT;
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  let out;
  switch (op) {
    case "list":
      out = { tools: (await client.listTools()).tools.map((t) => t.name).sort() };
      break;
    case "call":
      out = await client.callTool({ name: rest[0], arguments: JSON.parse(rest[1] ?? "{}") });
      break;
    case "prompts":
      out = { prompts: (await client.listPrompts()).prompts.map((p) => p.name).sort() };
      break;
    case "resources":
      out = { resources: (await client.listResources()).resources.map((r) => r.uri).sort() };
      break;
    case "read":
      out = await client.readResource({ uri: rest[0] });
      break;
    case "session": {
      const results = [];
      for (const [name, args] of JSON.parse(rest[0])) {
        results.push(await client.callTool({ name, arguments: args ?? {} }));
      }
      out = { results };
      break;
    }
    default:
      throw new Error(`unknown operation ${op}`);
  }
  process.stdout.write(JSON.stringify(out) + "\n");
  await client.close();
} catch (err) {
  console.error(String(err?.stack ?? err));
  process.exit(1);
}
