// Package packages is the hotfix package archive and the install store.
//
// The archive (pack, sign, open with safe extraction) turns a manifest and its payload files into
// one signed file and back, refusing anything it cannot vouch for before a byte of payload is
// trusted. The store applies a verified package to an install root through journaled steps,
// keeps backups for rollback, and records the installed files and the history.
package packages
