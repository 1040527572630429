// Package console is the marketers' web console on the admin listener:
// the sign-in with the admin token, the session cookie and CSRF checks, and
// the embedded page that works through the admin JSON API. It imports
// fasthttp only; cmd mounts it in front of the edge's admin handler.
package console
