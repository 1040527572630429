// Package snippets holds the JavaScript snippet that shop pages load and the
// demo shop pages, embedded into the binary, and their browser tests (real
// headless Chromium driven by playwright-core). It imports only the
// standard library; its tests also start an edge server.
package snippets
