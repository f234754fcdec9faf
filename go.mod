module github.com/portcullis-mcp/portcullis

go 1.26.0

require github.com/portcullis-mcp/portcullis/proto v0.0.0

replace github.com/portcullis-mcp/portcullis/proto => ./proto
