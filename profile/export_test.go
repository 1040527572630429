package profile

import "context"

// HoldLock takes pid's write lock on this node, as a slow write of the
// profile would, until release is called.
func (s *Service) HoldLock(pid string) (release func()) {
	l := s.stripe(pid)
	if err := l.lock(context.Background()); err != nil {
		panic(err)
	}
	return l.unlock
}
