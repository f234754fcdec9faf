// Command portcullis-gateway is the data-plane MCP gateway.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/peterbourgon/ff/v3"

	"github.com/portcullis-mcp/portcullis/dataplane/internal/app"
)

func main() {
	fs := flag.NewFlagSet("portcullis-gateway", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: portcullis-gateway --control-plane HOST:PORT [--enroll-token TOKEN] [flags]\n\n"+
			"Proxies MCP traffic at /mcp/{virtual-server} and enforces the policy pushed by the control plane.\n"+
			"Every flag can also be set as an environment variable PORTCULLIS_<FLAG> (e.g. PORTCULLIS_ENROLL_TOKEN).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var cfg app.Config
	cfg.RegisterFlags(fs)
	fs.SetOutput(io.Discard) // usage is printed below: on stdout for -h, on stderr for a mistake
	if err := ff.Parse(fs, os.Args[1:], ff.WithEnvVarPrefix("PORTCULLIS")); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fs.Usage()
			return
		}
		fmt.Fprintln(os.Stderr, "portcullis-gateway:", err)
		fs.SetOutput(os.Stderr)
		fs.Usage()
		os.Exit(2)
	}
	log, err := cfg.Logger()
	if err != nil {
		fmt.Fprintln(os.Stderr, "portcullis-gateway:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg, log); err != nil {
		log.Error("gateway stopped", "err", err)
		os.Exit(1)
	}
}
