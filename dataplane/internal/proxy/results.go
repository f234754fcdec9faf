package proxy

import (
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

func scanContent(cs []mcp.Content, a resultscan.Action, rep *resultscan.Report) {
	for _, c := range cs {
		switch x := c.(type) {
		case *mcp.TextContent:
			x.Text = resultscan.Text(x.Text, a, rep)
		case *mcp.EmbeddedResource:
			if x.Resource != nil {
				x.Resource.Text = resultscan.Text(x.Resource.Text, a, rep)
			}
		case *mcp.ResourceLink:
			x.Name = resultscan.Text(x.Name, a, rep)
			x.Title = resultscan.Text(x.Title, a, rep)
			x.Description = resultscan.Text(x.Description, a, rep)
		}
	}
}

// scanToolResult cleans a tool result in place per the bundle and records
// what it found on the call event. A blocked result becomes a refusal.
// changed reports whether the result differs from what the upstream sent.
func scanToolResult(res *mcp.CallToolResult, a resultscan.Action, ev *agentv1.CallEvent) (_ *mcp.CallToolResult, changed bool) {
	var rep resultscan.Report
	scanContent(res.Content, a, &rep)
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
