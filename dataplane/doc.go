// Package dataplane is the root of the gateway module; the binary is cmd/portcullis-gateway.
package dataplane
