package main

import (
	"relayfix/internal/layout"
	"relayfix/packages/installdb"
	"relayfix/relay/control"
)

// componentFiles maps each component of the relay to the installed file it runs.
var componentFiles = map[string]string{"tracking": "bin/msgtrack"}

// installedVersion returns the version the root's installed-files database records for rel,
// and whether it lists the file.
func installedVersion(root layout.Root, rel string) (string, bool) {
	db, err := installdb.Load(root)
	if err != nil {
		return "", false
	}
	f, ok := db.Lookup(rel)
	if !ok || f.Version.IsZero() {
		return "", false
	}
	return f.Version.String(), true
}

// restartPending reports the installed version when it differs from the running one: the new
// build is in place but the old one still runs until a restart. A build the database does not
// list, or a component that is not running, has nothing pending.
func restartPending(root layout.Root, rel, running string) (installed string, pending bool) {
	if running == "" {
		return "", false
	}
	v, ok := installedVersion(root, rel)
	if !ok || v == running {
		return "", false
	}
	return v, true
}

// markRestartPending fills in the installed versions that differ from the running builds.
func markRestartPending(root layout.Root, st *control.Status) {
	if v, ok := restartPending(root, "bin/relayd", st.Version); ok {
		st.Installed = v
	}
	for i, c := range st.Components {
		if rel, ok := componentFiles[c.Name]; ok {
			if v, ok := restartPending(root, rel, c.Version); ok {
				st.Components[i].Installed = v
			}
		}
	}
}
