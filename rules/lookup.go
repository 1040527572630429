package rules

import "time"

// Location is the shop's time zone (the document's timezone, else UTC):
// schedules, dates and days are read in it.
func (s *Set) Location() *time.Location { return s.loc }

// Block returns the block with id, of any slot, or nil.
func (s *Set) Block(id string) *Block { return s.blockByID(id) }
