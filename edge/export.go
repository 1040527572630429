package edge

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
	"github.com/valyala/fasthttp"
)

// exportPage is how many profiles an export reads per store scan.
const exportPage = 500

// maxExportFields bounds the fields of one export.
const maxExportFields = 32

// exportRow is one NDJSON line of an export.
type exportRow struct {
	Contact struct {
		Email      string `json:"email,omitempty"`
		CustomerID string `json:"customer_id,omitempty"`
	} `json:"contact"`
	Fields map[string]any `json:"fields"`
	Cursor string         `json:"cursor"`
}

// exportCursor is where an export resumes: the scan cursor of the page a
// row came from and the row's profile, so that a resumed export starts
// right after the last row the client kept (if the store reshuffled that
// page meanwhile, the whole page comes again: importers de-duplicate by
// e-mail address).
func exportCursor(page, pid string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(page + "\n" + pid))
}

func parseExportCursor(c string) (page, pid string, ok bool) {
	if c == "" {
		return "", "", true
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", "", false
	}
	page, pid, ok = strings.Cut(string(raw), "\n")
	return page, pid, ok && profile.IsID(pid)
}

// serveExport answers GET /admin/v1/segments/{id}/members?format=ndjson|csv
// &fields=email,first_name[&consent=marketing][&cursor=]: the segment's
// current members that are contacts, with their identifiers and the chosen
// fields, streamed while the store is scanned — one page of profile ids in
// memory at a time, whatever the number of profiles. Every row carries the
// cursor that resumes the export after it.
func (s *Server) serveExport(ctx *fasthttp.RequestCtx, id string, d *defs) {
	args := ctx.QueryArgs()
	format := string(args.Peek("format"))
	if format != "ndjson" && format != "csv" {
		s.writeError(ctx, errorf(ECodeInvalid, "format: ndjson or csv"))
		return
	}
	var fields []string
	if v := string(args.Peek("fields")); v != "" {
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimPrefix(strings.TrimSpace(f), "profile.")
			if !validName(f) {
				s.writeError(ctx, errorf(ECodeInvalid, "fields: profile field names separated by commas, like email,first_name"))
				return
			}
			if f == "email" || f == "customer_id" || slices.Contains(fields, f) {
				continue // the identifiers are always there
			}
			fields = append(fields, f)
		}
	}
	if len(fields) > maxExportFields {
		s.writeError(ctx, errorf(ECodeInvalid, "fields: at most "+strconv.Itoa(maxExportFields)))
		return
	}
	consent := string(args.Peek("consent"))
	if consent != "" && !validName(consent) {
		s.writeError(ctx, errorf(ECodeInvalid, "consent: a consent purpose, like marketing"))
		return
	}
	page, after, ok := parseExportCursor(string(args.Peek("cursor")))
	if !ok {
		s.writeError(ctx, errorf(ECodeInvalid, "cursor: a cursor from an earlier row of this export"))
		return
	}
	// The first page is read before answering, so that a store that is
	// down gives a 503 rather than an empty export.
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	pids, next, err := s.profiles.Scan(sctx, page, exportPage)
	cancel()
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	if format == "csv" {
		ctx.SetContentType("text/csv; charset=utf-8")
	} else {
		ctx.SetContentType("application/x-ndjson")
	}
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+id+`.`+format+`"`)
	now := s.cfg.Now()
	// The listener's write timeout would bound the whole stream, cutting
	// a large segment's export after a minute; the export sets its own
	// deadline instead, renewed for every profile it reads, so that only
	// a client that stops reading (or a stalled store) ends it.
	progress := func() { ctx.SetWriteDeadline(time.Now().Add(s.adminWriteTimeout())) }
	progress()
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		s.metrics.exports.Inc()
		ex := exporter{s: s, d: d, id: id, fields: fields, consent: consent, now: now, w: w, format: format, progress: progress}
		if format == "csv" {
			ex.csv = csv.NewWriter(w)
			ex.csv.Write(append(append([]string{"email", "customer_id"}, fields...), "cursor"))
		}
		// A long export holds no request context: it ends when the scan
		// does, when the client goes away (a write fails), or after a day.
		bctx, cancel := context.WithTimeout(context.Background(), 24*time.Hour)
		defer cancel()
		for {
			if err := ex.page(bctx, page, pids, after); err != nil {
				ex.fail(err)
				return
			}
			after = ""
			if next == "" {
				break
			}
			page = next
			sctx, cancel := context.WithTimeout(bctx, 30*time.Second)
			pids, next, err = s.profiles.Scan(sctx, page, exportPage)
			cancel()
			if err != nil {
				ex.fail(err)
				return
			}
		}
		ex.flush()
	})
}

// exporter writes the rows of one export.
type exporter struct {
	s       *Server
	d       *defs
	id      string
	fields  []string
	consent string
	now     time.Time
	w       *bufio.Writer
	format  string
	csv     *csv.Writer
	rec     []string
	n       int
	// progress renews the connection's write deadline.
	progress func()
}

// page writes the members among one page of profile ids; rows up to and
// including after (a resumed cursor's profile) were sent before.
func (ex *exporter) page(ctx context.Context, page string, pids []string, after string) error {
	if after != "" {
		if i := slices.Index(pids, after); i >= 0 {
			pids = pids[i+1:]
		}
	}
	for _, pid := range pids {
		ex.progress()
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		snap, err := ex.s.profiles.Load(lctx, pid, ex.d.policy)
		cancel()
		if err != nil {
			return err
		}
		p := snap.Primary
		if merged(pid, snap) || !p.IsContact() || (ex.consent != "" && !p.HasConsent(ex.consent)) {
			continue
		}
		in := rules.Input{Profile: p, Seasonal: snap.Seasonal, Now: ex.now}
		if ok, _ := ex.d.set.Member(ex.id, &in); !ok {
			continue
		}
		if err := ex.row(p, exportCursor(page, pid)); err != nil {
			return err
		}
	}
	return nil
}

func (ex *exporter) row(p *profile.Profile, cursor string) error {
	ex.n++
	if ex.csv != nil {
		ex.rec = append(ex.rec[:0], csvCell(p.Email), csvCell(p.CustomerID))
		for _, f := range ex.fields {
			v, _ := p.FieldValue(f)
			ex.rec = append(ex.rec, csvCell(v))
		}
		ex.rec = append(ex.rec, cursor)
		if err := ex.csv.Write(ex.rec); err != nil {
			return err
		}
		if ex.n%100 == 0 {
			ex.csv.Flush()
			if err := ex.csv.Error(); err != nil {
				return err
			}
			return ex.w.Flush()
		}
		return nil
	}
	var r exportRow
	r.Contact.Email, r.Contact.CustomerID = p.Email, p.CustomerID
	r.Fields = make(map[string]any, len(ex.fields))
	for _, f := range ex.fields {
		if v, ok := p.FieldValue(f); ok {
			r.Fields[f] = v
		}
	}
	r.Cursor = cursor
	b, _ := json.Marshal(r)
	b = append(b, '\n')
	_, err := ex.w.Write(b)
	if ex.n%100 == 0 {
		err = ex.w.Flush() // a client that went away ends the export
	}
	return err
}

func (ex *exporter) flush() {
	if ex.csv != nil {
		ex.csv.Flush()
	}
	ex.w.Flush()
}

// fail ends an export that could not finish: the status line is long
// gone, so the last line says so (an NDJSON object with "error", or a CSV
// row starting with "#error"), and the client resumes from the last row's
// cursor.
func (ex *exporter) fail(err error) {
	ex.s.log.Warn("segment export stopped", "segment", ex.id, "rows", ex.n, "err", err)
	if ex.csv != nil {
		ex.csv.Write([]string{"#error", "the export stopped early: resume with the last row's cursor"})
		ex.flush()
		return
	}
	ex.w.WriteString(`{"error":"the export stopped early: resume with the last row's cursor"}` + "\n")
	ex.w.Flush()
}

// csvCell formats a value for a CSV cell. A cell that a spreadsheet would
// run as a formula (=, +, -, @, tab, carriage return first) is prefixed
// with an apostrophe: profile values come from visitors.
func csvCell(v any) string {
	var s string
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		s = t
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(t)
	case []string:
		s = strings.Join(t, "|")
	}
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		s = "'" + s
	}
	return s
}

// validName reports whether s is a field or purpose name.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
