// Command etalage runs the personalization edge service (serve), checks a
// definitions document offline (check) and pushes one to a running service
// (apply). Main wires flags and ETALAGE_* variables to the edge server and a
// profile store; it holds no logic of its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// errUsage marks a bad command line: exit code 2 with a one-line message.
var errUsage = errors.New("usage")

// usageError is a one-line command-line error.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
func (e *usageError) Unwrap() error { return errUsage }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitError carries an exit code other than 1 (check's problems, say).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

const usage = `etalage — personalised homepages for webshops

Usage:
  etalage serve [flags]         run the service (etalage serve -h for flags)
  etalage check FILE            validate a definitions document offline
  etalage apply -f FILE         push a definitions document to a running service
  etalage health [URL]          exit 0 when URL (default: /healthz on $ETALAGE_LISTEN) answers 200
  etalage help                  this text

Every serve flag has an ETALAGE_* variable: --admin-listen is ETALAGE_ADMIN_LISTEN.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

func exitCode(err error, stderr io.Writer) int {
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "etalage:", ee.err)
		}
		return ee.code
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "etalage:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "etalage:", err)
		return 1
	}
}

// run dispatches a subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("a subcommand is required: serve, check, apply or health")
	}
	switch args[0] {
	case "serve":
		m := NewMain(stdout, stderr)
		m.LimitMemory = true
		if err := m.Run(ctx, args[1:]); err != nil {
			m.Close()
			return err
		}
		<-ctx.Done()
		return m.Close()
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "apply":
		return runApply(ctx, args[1:], stdout, stderr)
	case "health":
		return runHealth(ctx, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usagef("unknown subcommand %q: use serve, check, apply, health or help", args[0])
}

// runHealth is `etalage health [URL]`: exit 0 when URL answers 200. The
// container image has no curl, so its HEALTHCHECK uses this. Without a URL
// it asks /healthz on the public address that ETALAGE_LISTEN gives (the
// image's HEALTHCHECK then follows a moved listener), else :8080.
func runHealth(ctx context.Context, args []string) error {
	if len(args) > 1 {
		return usagef("health takes at most one URL")
	}
	u := ""
	if len(args) == 1 {
		u = args[0]
	} else {
		u = healthURL(os.Getenv(envName("listen")))
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return usagef("health: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}

// healthURL is the /healthz URL of the public listener at listen (":8080"
// when empty), asked on the loopback address when it listens on all.
func healthURL(listen string) string {
	if listen == "" {
		listen = ":8080"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen + "/healthz"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz"
}
