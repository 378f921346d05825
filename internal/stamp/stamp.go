// Package stamp carries the four-part file version that the build stamps into relayfix binaries.
//
// The version is set at link time with
//
//	-ldflags "-X relayfix/internal/stamp.what=@(#)relayfix-fileversion:6.5.7651.45;"
//
// and is stored in the binary as that literal what-string (in the manner of SCCS what(1)), so an
// updater can read a binary's version statically, by scanning its bytes, without running it. The
// string is empty in an unstamped build; Version then reports 0.0.0.0.
package stamp

import "strings"

// Marker opens the stamped what-string; Terminator closes it.
const (
	Marker     = "@(#)relayfix-fileversion:"
	Terminator = ";"
)

// Versions of the builds this repository ships. The Makefile stamps the same numbers
// (a test in this package keeps the two in step).
const (
	// ProductVersion is the product version that service pack 2 installs.
	ProductVersion = "6.5.7638"
	// RelaydVersion is the file version of the relayd build shipped with service pack 2.
	RelaydVersion = "6.5.7638.1"
	// TrackPrefixVersion is the file version of the pre-fix tracking build (service pack 2).
	TrackPrefixVersion = "6.5.7638.1"
	// TrackFixedVersion is the file version of the KB910618 tracking build.
	TrackFixedVersion = "6.5.7651.45"
	// SP3ProductVersion is the product version that service pack 3 installs.
	SP3ProductVersion = "6.5.7700"
	// RelaydSP3Version is the file version of the relayd build shipped with service pack 3.
	RelaydSP3Version = "6.5.7700.1"
	// TrackSP3Version is the file version of the tracking build shipped with service pack 3,
	// which carries the KB910618 fix.
	TrackSP3Version = "6.5.7700.1"
)

// what is set by the linker; see the package comment.
var what string

// Version returns the build's four-part file version, or "0.0.0.0" when the build is not stamped.
func Version() string {
	v, ok := strings.CutPrefix(what, Marker)
	if !ok {
		return "0.0.0.0"
	}
	return strings.TrimSuffix(v, Terminator)
}

// LDFlag returns the -X linker flag that stamps version into a build.
func LDFlag(version string) string {
	return "-X relayfix/internal/stamp.what=" + Marker + version + Terminator
}
