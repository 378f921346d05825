// Package packages holds no code of its own: it is the home of the package manager's parts, kept
// under one folder because the layout is part of the product's contract.
//
//	packages/archive    the package file: pack, sign, open with safe extraction
//	packages/store      the install store: journaled apply, rollback, recovery, history
//	packages/installdb  the product record and installed-files database, which the store
//	                    writes and the verifier and relayd read
//	packages/e2e        the end-to-end tests, run against the real binaries
//
// The archive and the store never call each other: the store sees an OpenFunc, and cmd/hotfix
// joins the two. Signature checking sits with key loading in relayfix/verifier. relayd links only
// installdb, so the relay does not carry the package manager.
package packages
