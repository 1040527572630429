package profile

import (
	"context"
	"errors"
	"time"
)

// errTODO marks what the profiles issue still has to build; nothing returns
// it once that work lands.
var errTODO = errors.New("profile: not implemented yet")

// Options configure a Service.
type Options struct {
	// Now is the clock; nil means time.Now. `--now` freezes it.
	Now func() time.Time
}

// Service applies events to profiles kept in a Store, links visitors to
// contacts and merges them, and exports and erases profiles. It is safe for
// concurrent use.
type Service struct {
	store Store
	now   func() time.Time
}

// NewService returns a Service over store.
func NewService(store Store, opts Options) *Service {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

// Snapshot is a profile as read from the store: the primary profile and one
// seasonal profile per season of the policy it was loaded with, with the
// records they were decoded from. A Snapshot is immutable once returned, so
// it may be cached and shared between goroutines.
type Snapshot struct {
	Primary  *Profile   // never nil: an absent profile is empty, with ID set
	Seasonal []*Profile // parallel to Policy.Seasons; nil when absent or from an earlier cycle
	Records  []Record   // [0] primary, then one per season, as stored
}

// Load reads pid's primary profile and its seasonal profiles for the seasons
// of pol, in one store round trip.
func (s *Service) Load(ctx context.Context, pid string, pol *Policy) (*Snapshot, error) {
	return nil, errTODO
}

// Record validates nothing (events come decoded and validated) and applies
// events to the profile of pid atomically, starting from cached when it is
// not nil (saving a read when it is still current) and retrying on
// concurrent changes. An identify event may move the visitor to a contact's
// profile: the returned snapshot's Primary.ID is then the surviving profile
// id, which the caller puts in the visitor's cookie.
func (s *Service) Record(ctx context.Context, pid string, cached *Snapshot, events []Event, pol *Policy) (*Snapshot, error) {
	return nil, errTODO
}

// Contact returns the profile id of the contact named by ident
// ("email:<address>" or "customer:<id>"), creating a linked empty profile
// when the contact is new.
func (s *Service) Contact(ctx context.Context, ident string) (string, error) {
	return "", errTODO
}

// Resolve turns a reference into a profile id: a 32-hex profile id is
// returned as it is, "email:<address>" and "customer:<id>" are looked up.
func (s *Service) Resolve(ctx context.Context, ref string) (string, error) {
	return "", errTODO
}

// Export returns everything held on the profile ref names, as a JSON-ready
// value (right of access).
func (s *Service) Export(ctx context.Context, ref string, pol *Policy) (any, error) {
	return nil, errTODO
}

// Erase removes everything held on the profile ref names: primary and
// seasonal records and every identity link (right to erasure).
func (s *Service) Erase(ctx context.Context, ref string) error {
	return errTODO
}
