// Package archive is the hotfix package file: a zstd-compressed tar holding a manifest, its
// minisign signature and the payload files. Pack and PackSigned write one; Open reads one and
// verifies it in a single streaming pass, signature first (through relayfix/verifier, where the
// keys are loaded), then each payload against the verified file table while it is extracted, so
// that nothing it cannot vouch for is trusted or left behind. Peek reads what a package claims
// without trusting it.
//
// It knows nothing about install roots: what is done with an opened package is the install
// store's business (relayfix/packages/store).
package archive
