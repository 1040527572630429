// Package trigger delivers segment changes to webhooks: it watches the
// segments that webhooks list when a contact's profile is written (the
// outbox travels in the profile's trigger record, in the same atomic write),
// schedules re-evaluations for the moment time alone may change an answer,
// and sends Standard Webhooks–signed POSTs with retries. It imports rules
// and profile; cmd wires it and edge only reports on it.
package trigger
