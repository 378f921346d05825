package main

import (
	"relayfix/internal/layout"
	"relayfix/packages/installdb"
	"relayfix/relay/control"
)

// markRestartPending fills in, for relayd itself and each component, the installed version
// when it differs from the running build: hotfix replaced the file and the old build still runs
// until a restart. The comparison is the installed-files database's own, the one hotfix list
// and hotfix apply make. A root without a database has nothing pending.
func markRestartPending(root layout.Root, st *control.Status) {
	db, err := installdb.Load(root)
	if err != nil {
		return
	}
	running := []installdb.Running{{Name: "relayd", Binary: "bin/relayd", Version: st.Version}}
	for _, c := range st.Components {
		running = append(running, installdb.Running{Name: c.Name, Binary: c.Binary, Version: c.Version})
	}
	for _, s := range db.RestartPending(root, running) {
		if s.Name == "relayd" {
			st.Installed = s.Installed
			continue
		}
		for i := range st.Components {
			if st.Components[i].Name == s.Name {
				st.Components[i].Installed = s.Installed
			}
		}
	}
}
