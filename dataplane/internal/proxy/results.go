package proxy

import (
	"bytes"
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/resultscan"
	agentv1 "github.com/portcullis-mcp/portcullis/proto/gen/portcullis/agent/v1"
)

// resultAction maps the bundle's setting; unset means redact.
func resultAction(rs *agentv1.ResultScanning) resultscan.Action {
	switch rs.GetAction() {
	case agentv1.ResultAction_RESULT_ACTION_ANNOTATE:
		return resultscan.Annotate
	case agentv1.ResultAction_RESULT_ACTION_BLOCK:
		return resultscan.Block
	}
	return resultscan.Redact
}

// scanAction is what result scanning does under pol; with no bundle yet,
// the default (redact).
func (pol *policy) scanAction() resultscan.Action {
	if pol == nil {
		return resultscan.Redact
	}
	return pol.results
}

// scanContent cleans content items and returns them. Text items are scanned
// as the one text a reader sees (a secret split across them is found); when
// one is, they are merged into the first.
func scanContent(cs []mcp.Content, a resultscan.Action, rep *resultscan.Report) []mcp.Content {
	var texts []string
	var at []int
	for i, c := range cs {
		switch x := c.(type) {
		case *mcp.TextContent:
			texts, at = append(texts, x.Text), append(at, i)
		case *mcp.EmbeddedResource:
			if x.Resource != nil {
				x.Resource.Text = resultscan.Text(x.Resource.Text, a, rep)
				x.Resource.Blob = resultscan.Blob(x.Resource.Blob, a, rep)
			}
		case *mcp.ResourceLink:
			x.Name = resultscan.Text(x.Name, a, rep)
			x.Title = resultscan.Text(x.Title, a, rep)
			x.Description = resultscan.Text(x.Description, a, rep)
		}
	}
	out := resultscan.Texts(texts, a, rep)
	for j, t := range out {
		cs[at[j]].(*mcp.TextContent).Text = t
	}
	if len(out) == len(texts) {
		return cs
	}
	merged := make([]mcp.Content, 0, len(cs)-len(at)+1)
	for i, c := range cs {
		if _, ok := c.(*mcp.TextContent); !ok || i == at[0] {
			merged = append(merged, c)
		}
	}
	return merged
}

// scanToolResult cleans a tool result in place per the bundle and records
// what it found on the call event. A blocked result becomes a refusal.
// changed reports whether the result differs from what the upstream sent.
func scanToolResult(res *mcp.CallToolResult, a resultscan.Action, ev *agentv1.CallEvent) (_ *mcp.CallToolResult, changed bool) {
	var rep resultscan.Report
	res.Content = scanContent(res.Content, a, &rep)
	if res.StructuredContent != nil {
		res.StructuredContent = resultscan.Value(res.StructuredContent, a, &rep)
	}
	if !rep.Modified() {
		return res, false
	}
	if a == resultscan.Block && rep.Suspicious() {
		ev.Decision, ev.Reason = agentv1.Decision_DECISION_DENY, "result blocked: "+rep.Summary()
		return refusal("the tool's result was withheld because it contained %s", rep.Summary()), true
	}
	ev.Reason = "result: " + rep.Summary()
	res.Content = append(res.Content, &mcp.TextContent{Text: rep.Notice(a)})
	return res, true
}

// scanResource cleans resource contents; a blocked read is an error.
func scanResource(res *mcp.ReadResourceResult, a resultscan.Action) (*mcp.ReadResourceResult, error) {
	var rep resultscan.Report
	for _, c := range res.Contents {
		if c != nil {
			c.Text = resultscan.Text(c.Text, a, &rep)
			c.Blob = resultscan.Blob(c.Blob, a, &rep)
		}
	}
	if !rep.Modified() {
		return res, nil
	}
	if a == resultscan.Block && rep.Suspicious() {
		return nil, &blockedError{rep.Summary()}
	}
	res.Contents = append(res.Contents, &mcp.ResourceContents{URI: "portcullis:notice", MIMEType: "text/plain", Text: rep.Notice(a)})
	return res, nil
}

// scanPrompt cleans the messages of a prompt; a blocked prompt is an error.
func scanPrompt(res *mcp.GetPromptResult, a resultscan.Action) (*mcp.GetPromptResult, error) {
	var rep resultscan.Report
	res.Description = resultscan.Text(res.Description, a, &rep)
	for _, m := range res.Messages {
		if m != nil {
			scanContent([]mcp.Content{m.Content}, a, &rep)
		}
	}
	if a == resultscan.Block && rep.Suspicious() {
		return nil, &blockedError{rep.Summary()}
	}
	return res, nil
}

type blockedError struct{ summary string }

func (e *blockedError) Error() string {
	return "portcullis refused: the upstream's content was withheld because it contained " + e.summary
}

// scanError cleans a JSON-RPC error an upstream answered (its message and
// data reach the model or a person like a result does) and returns the copy
// to send on. A blocked error keeps its code and says why its text is gone;
// data that is not JSON is dropped.
func scanError(je *jsonrpc.Error, a resultscan.Action) *jsonrpc.Error {
	var rep resultscan.Report
	out := &jsonrpc.Error{Code: je.Code, Message: resultscan.Text(je.Message, a, &rep)}
	if len(je.Data) > 0 {
		var v any
		d := json.NewDecoder(bytes.NewReader(je.Data))
		d.UseNumber()
		if d.Decode(&v) == nil {
			out.Data, _ = json.Marshal(resultscan.Value(v, a, &rep))
		}
	}
	if a == resultscan.Block && rep.Suspicious() {
		out.Message, out.Data = "Portcullis withheld the upstream's error message because it contained "+rep.Summary(), nil
	}
	return out
}

// scanSchema cleans every string of an elicitation's requested schema.
func scanSchema(schema any, a resultscan.Action, rep *resultscan.Report) any {
	if schema == nil {
		return nil
	}
	var v any
	switch x := schema.(type) {
	case map[string]any:
		v = x
	default: // json.RawMessage, a typed schema: as JSON
		b, err := json.Marshal(x)
		if err != nil {
			return nil
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if d.Decode(&v) != nil {
			return nil
		}
	}
	return resultscan.Value(v, a, rep)
}
