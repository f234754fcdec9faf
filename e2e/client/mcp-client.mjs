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
//   node mcp-client.mjs URL features             → what server-everything's client features did through
//                                                  this hop: sampling, elicitation, roots, logging,
//                                                  completion, subscriptions (the client declares
//                                                  sampling, elicitation and roots, and answers them)
//
// MCP_BEARER, when set, is sent as "Authorization: Bearer <value>";
// MCP_TRACEPARENT as a W3C "traceparent" header.
// Prints one JSON document on stdout; exits 1 with the error on stderr.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";

const [url, op, ...rest] = process.argv.slice(2);
if (!url || !op) {
  console.error("usage: mcp-client.mjs URL list|call TOOL JSON|prompts|resources|read URI|session JSON");
  process.exit(2);
}
const features = op === "features";
const client = new Client(
  { name: "portcullis-e2e", version: "1.0.0" },
  features ? { capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } } } : undefined,
);
const seen = { sampling: [], elicitation: [], logs: [] };
if (features) {
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    const text = req.params.messages.map((m) => m.content?.text ?? "").join(" ");
    seen.sampling.push(text);
    return { model: "e2e-model", role: "assistant", content: { type: "text", text: `sampled(${text})` } };
  });
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    seen.elicitation.push(req.params.message);
    return { action: "accept", content: { name: "Ada Lovelace", check: true } };
  });
  client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: "file:///e2e/root", name: "e2e" }] }));
  client.setNotificationHandler(LoggingMessageNotificationSchema, async (n) => {
    seen.logs.push(n.params);
  });
}
const textOf = (res) => (res.content ?? []).map((c) => c.text ?? "").join("\n");
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
    case "features": {
      out = { tools: (await client.listTools()).tools.map((t) => t.name).sort() };
      out.sampling = textOf(await client.callTool({ name: "trigger-sampling-request", arguments: { prompt: "hello sampling" } }));
      out.elicitation = textOf(await client.callTool({ name: "trigger-elicitation-request", arguments: {} }));
      out.roots = textOf(await client.callTool({ name: "get-roots-list", arguments: {} }));
      out.completion = (
        await client.complete({ ref: { type: "ref/prompt", name: "completable-prompt" }, argument: { name: "department", value: "Eng" } })
      ).completion.values;
      await client.subscribeResource({ uri: "demo://resource/dynamic/text/1" });
      await client.unsubscribeResource({ uri: "demo://resource/dynamic/text/1" });
      out.subscribed = true;
      await client.setLoggingLevel("debug");
      out.logging = textOf(await client.callTool({ name: "toggle-simulated-logging", arguments: {} }));
      for (let i = 0; i < 200 && seen.logs.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      await client.callTool({ name: "toggle-simulated-logging", arguments: {} });
      out.seen = seen;
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
