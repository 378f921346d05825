// Package repository publishes hotfix packages as a signed repository of static files and reads
// them back on a host, through The Update Framework (go-tuf/v2).
//
// A repository is a directory any web server can serve: TUF metadata (root, targets, snapshot and
// timestamp, each signed by its own key and each with an expiry) at the top, the packages under
// targets/, named by their SHA-256 (consistent snapshots), and nothing that must run on the
// server. What the metadata says about a package - its id, kind, product and service-pack
// constraints, what it supersedes and which known problems it fixes - travels as the target's
// custom metadata, so that a host can decide what applies to it without downloading a package.
//
// The client keeps, per source, the trusted metadata under ROOT/hotfix/sources/: TUF's rollback
// protection lives in those files, so they persist between runs. Everything the client refuses
// (a tampered package, rolled-back or expired metadata, mix-and-match, endless data, signatures
// by keys the root does not trust) go-tuf refuses; this package adds the length caps, the cache
// that holds only verified packages, and the words that say what was wrong.
//
// The package sits at the top level, beside packages/, rather than inside it: it uses the
// package reader (to verify before publishing) and the prerequisite checker (to say what applies)
// as a client of both, and neither needs to know that repositories exist.
package repository
