package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/etalage/etalage/rules"
)

// runCheck validates a definitions document offline: every problem with its
// path on its own line, exit 1; "ok" and exit 0 when it compiles.
func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("etalage check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := parseQuiet(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("check takes one file: etalage check defs.yaml")
	}
	name := fs.Arg(0)
	doc, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("read definitions: %w", err)
	}
	set, err := rules.Compile(doc)
	if err != nil {
		var ve *rules.ValidationError
		if !errors.As(err, &ve) {
			return err
		}
		for _, p := range ve.Problems {
			fmt.Fprintln(stdout, problemLine(name, p, ""))
		}
		return &exitError{code: 1, err: fmt.Errorf("%s: %d problem(s)", name, len(ve.Problems))}
	}
	for _, w := range set.Warnings() {
		fmt.Fprintln(stdout, problemLine(name, w, "warning: "))
	}
	if n := len(set.Warnings()); n > 0 {
		fmt.Fprintf(stdout, "%s: ok, with %d warning(s)\n", name, n)
		return nil
	}
	fmt.Fprintf(stdout, "%s: ok\n", name)
	return nil
}

// problemLine is file:line: path: message, leaving out what is unknown, the
// way compilers print, so that editors jump to the line.
func problemLine(file string, p rules.Problem, prefix string) string {
	var b strings.Builder
	b.WriteString(file)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	b.WriteString(prefix)
	b.WriteString(p.String())
	return b.String()
}

// runApply pushes a definitions document to a running service's admin API.
func runApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("etalage apply", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "the definitions document (YAML or JSON)")
	adminURL := fs.String("admin-url", "http://127.0.0.1:8081", "the admin listener of a running service")
	token := fs.String("admin-token", "", "the admin bearer token")
	note := fs.String("note", "", "what changed and why, kept with the revision")
	ifMatch := fs.String("if-match", "", "apply only if this revision is still the running one (the one you edited)")
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return err
	}
	if *file == "" {
		return usagef("apply needs -f FILE")
	}
	doc, err := os.ReadFile(*file)
	if err != nil {
		return fmt.Errorf("read definitions: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimRight(*adminURL, "/")+"/admin/v1/definitions?note="+url.QueryEscape(*note), bytes.NewReader(doc))
	if err != nil {
		return usagef("--admin-url: %v", err)
	}
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	if *ifMatch != "" {
		req.Header.Set("If-Match", `"`+strings.Trim(*ifMatch, `"`)+`"`)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("apply definitions: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	var out struct {
		Revision int64           `json:"revision"`
		Changed  *bool           `json:"changed"`
		Errors   []rules.Problem `json:"errors"`
		Error    struct {
			Code, Message string
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &out)
	switch {
	case resp.StatusCode == http.StatusOK:
		if out.Changed != nil && !*out.Changed {
			fmt.Fprintf(stdout, "%s: unchanged, revision %d is running\n", *file, out.Revision)
			return nil
		}
		fmt.Fprintf(stdout, "%s: applied as revision %d\n", *file, out.Revision)
		return nil
	case len(out.Errors) > 0:
		for _, p := range out.Errors {
			fmt.Fprintln(stdout, problemLine(*file, p, ""))
		}
		return &exitError{code: 1, err: fmt.Errorf("%s: rejected with %d problem(s); the running definitions are unchanged", *file, len(out.Errors))}
	case out.Error.Message != "":
		return fmt.Errorf("apply definitions: %s (%s)", out.Error.Message, resp.Status)
	}
	return fmt.Errorf("apply definitions: %s", resp.Status)
}
