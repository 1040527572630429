package profile

// Empty reports whether the snapshot holds no stored record at all: the
// profile was erased, expired or never written.
func (s *Snapshot) Empty() bool {
	for _, r := range s.Records {
		if r.Version != 0 {
			return false
		}
	}
	return true
}
