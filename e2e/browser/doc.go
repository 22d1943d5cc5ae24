// Package browser drives the admin page in real headless Chromium (Debian's package,
// through chromedp) against the built binary, and saves a screenshot of every page.
package browser
