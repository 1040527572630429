package profile

import (
	"context"
	"errors"
	"time"
)

// Errors a Store returns. Adapters turn their driver's errors into these at
// the boundary (wrapping the original for logs).
var (
	// ErrConflict: a Put found a record whose version is not the expected one.
	ErrConflict = errors.New("profile changed concurrently")
	// ErrNotFound: no such identifier link or definitions document.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: the store cannot be reached or did not answer in time.
	ErrUnavailable = errors.New("profile store unavailable")
)

// Record is one stored profile record (primary or seasonal) as opaque bytes
// with the version that the next Put must expect. Version 0 means absent.
type Record struct {
	Data    []byte
	Version uint64
}

// Write is one record to write in a Put. Season "" is the primary record.
// Data nil deletes the record. The write applies only when the stored version
// is still Expect (0: the record must be absent); the record then gets Version.
//
// Links (primary writes only) name the identity links that must live exactly
// as long as the record: each one that still maps to the profile gets the
// record's expiry, to the millisecond; links mapping elsewhere, or absent,
// are left alone. On a single store this happens in the same atomic write.
// Where a link cannot share the record's slot (Redis Cluster) it follows
// right after the record was written, and ends with the record's expiry
// whatever order writers of one profile on several nodes do this in,
// earlier than before too (a lowered TTL). The service makes links with a
// short TTL (Link) that the first write of their record extends.
type Write struct {
	Season  string
	Expect  uint64
	Version uint64
	Data    []byte
	TTL     time.Duration // 0: no expiry
	Links   []string
	// Tallies are counter increments applied in the same atomic step as
	// the records, only when the write applies (experiment exposures and
	// conversions). A store applies the tallies of every write of a Put.
	Tallies []Tally
}

// AnyRevision as DefinitionsPut.Expect stores whatever revision is current.
const AnyRevision int64 = -1

// DefinitionsPut is one definitions write.
type DefinitionsPut struct {
	Doc    []byte
	Expect int64     // the revision that must be current (0: none stored), or AnyRevision
	Time   time.Time // when it was applied
	Note   string    // what changed and why, as the applier wrote it
	File   string    // the digest of the --definitions file it came from at a start, if so
}

// Revision is one kept definitions revision. Doc is set only when a single
// revision is read.
type Revision struct {
	Rev  int64     `json:"revision"`
	Time time.Time `json:"time"`
	Note string    `json:"note,omitempty"`
	File string    `json:"file,omitempty"`
	Doc  []byte    `json:"-"`
}

// Sample is a uniform random sample of the stored primary profiles.
type Sample struct {
	PIDs []string
	// Population estimates the number of stored primary profiles; RelErr is
	// its relative standard error (0 when exact).
	Population float64
	RelErr     float64
	// Exact: PIDs are every stored profile, once.
	Exact bool
}

// Store keeps profile records, identity links and the definitions document.
// All records of one profile live together (one Redis hash slot), so that a
// Get is one round trip and a Put is atomic over them.
type Store interface {
	// Get reads the primary record of pid followed by the named seasonal
	// records, in that order, in one round trip. Absent records have Version 0.
	Get(ctx context.Context, pid string, seasons []string) ([]Record, error)
	// Put applies the writes atomically: all of them, or none and ErrConflict.
	Put(ctx context.Context, pid string, writes []Write) error
	// Delete removes every record of pid, primary and all seasonal ones.
	Delete(ctx context.Context, pid string) error

	// Link maps ident to pid unless ident is already mapped, and returns the
	// pid ident maps to afterwards. A new link gets ttl; an existing link to
	// pid keeps its expiry (the record's Put sets it, see Write.Links).
	Link(ctx context.Context, ident, pid string, ttl time.Duration) (string, error)
	// Lookup returns the pid ident maps to, or ErrNotFound.
	Lookup(ctx context.Context, ident string) (string, error)
	// Unlink removes ident's link if it still maps to pid.
	Unlink(ctx context.Context, ident, pid string) error

	// AddClaimant notes that profile pid carries ident as an unproven claim (an
	// address typed into a form, kept as a field), so that erasing ident
	// finds it. The note lives at least ttl.
	AddClaimant(ctx context.Context, ident, pid string, ttl time.Duration) error
	// Claimants returns the profiles noted for ident (some may have expired or
	// dropped the claim since).
	Claimants(ctx context.Context, ident string) ([]string, error)
	// DropClaimant forgets pid's note of ident, or every note of ident
	// when pid is "".
	DropClaimant(ctx context.Context, ident, pid string) error

	// Scan lists profile ids in pages; an empty cursor starts and an empty
	// next cursor ends. Pages may be shorter than count.
	Scan(ctx context.Context, cursor string, count int) (pids []string, next string, err error)

	// Sample draws about n profile ids uniformly at random from the stored
	// primary profiles (with repetition possible) and estimates how many
	// there are; a store with few profiles answers them all, exactly.
	Sample(ctx context.Context, n int) (Sample, error)

	// Definitions returns the stored definitions document and its revision,
	// or ErrNotFound.
	Definitions(ctx context.Context) (doc []byte, rev int64, err error)
	// Revision returns the revision of the stored document (0 when none); it
	// is cheap, so nodes poll it to pick up changes.
	Revision(ctx context.Context) (int64, error)
	// PutDefinitions stores p.Doc as the next revision, atomically: when
	// p.Expect is not AnyRevision and the stored revision differs, it
	// stores nothing and returns ErrConflict; when p.Doc equals the stored
	// document it stores no new revision and returns the current one with
	// created false. Either way a non-empty p.File is remembered (FileRevision).
	PutDefinitions(ctx context.Context, p DefinitionsPut) (rev int64, created bool, err error)
	// DefinitionsRevisions lists the kept revisions older than before (0:
	// from the newest), newest first, at most limit of them, without
	// their documents.
	DefinitionsRevisions(ctx context.Context, before int64, limit int) ([]Revision, error)
	// DefinitionsRevision returns revision n with its document, or ErrNotFound.
	DefinitionsRevision(ctx context.Context, n int64) (Revision, error)
	// FileRevision returns the revision that a definitions file with this
	// digest was applied as at a start (or found equal to), or ErrNotFound
	// when no start ever applied it.
	FileRevision(ctx context.Context, digest string) (int64, error)

	// Tallies returns the counters of the counter set name (written by
	// Write.Tallies), summed over however the store shards them; an
	// unknown name has no counters.
	Tallies(ctx context.Context, name string) (map[string]int64, error)

	// AddBlockCounts adds served and click counts to each (day, block)
	// and the visitors to its distinct-visitor sketch (a HyperLogLog the
	// same as Redis's PFADD). The day's counts live ReportRetention.
	AddBlockCounts(ctx context.Context, counts []BlockCount) error
	// BlockCounts returns the counts of the given days (YYYY-MM-DD), one
	// row per day and block that has any, ordered by day and block.
	BlockCounts(ctx context.Context, days []string) ([]BlockDay, error)

	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}
