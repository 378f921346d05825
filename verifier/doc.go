// Package verifier checks real files against a manifest's file table, the way an operator would
// check a KB article's table by hand: size in bytes, SHA-256, the four-part file version, the
// platform the executable was built for, and the UTC date and time. It also checks a package's
// prerequisites against the install database, and owns everything about minisign keys and
// signatures: creating a key pair, reading secret keys, loading the trusted public keys, signing
// a manifest and checking its signature, so that the archive and hotfix's commands hold no key
// handling of their own.
//
// Everything is read statically. The file version comes from scanning the file's bytes for the
// what-string that the build stamps in (see relayfix/internal/stamp), never from running the
// binary, and the platform comes from the executable header. Both are computed by a Digester, an
// io.Writer, so a package reader can check a payload in the same single pass that hashes it while
// it is still streaming out of the archive.
package verifier
