// Package e2e tests the install store end to end with the real binaries: it builds hotfix,
// relayd and both msgtrack builds, signs SP2 and KB910618 packages from the templates in
// packaging/, and drives hotfix as a separate process — applying, listing, rolling back,
// killing it at every step boundary, and filling the disk under it.
package e2e
