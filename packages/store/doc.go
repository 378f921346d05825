// Package store applies verified packages to an install root and takes them back: staging,
// backup, the swap of each file (minio/selfupdate for binaries), restarting the services through
// the running relay and waiting for them to report the new build healthy, all as one journaled
// transaction that recovery finishes or undoes after a crash; and the history of transactions.
// It writes the records of relayfix/packages/installdb.
//
// It does not read package files: Apply takes an OpenFunc that verifies and stages one, so the
// archive format (relayfix/packages/archive) and the store change independently. What it needs
// from the running relay it declares in its own types (Services), which cmd/hotfix adapts to the
// control socket.
package store
