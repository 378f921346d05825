//go:build msgtrack_prefix

package main

import "relayfix/relay/trackplugin"

// protocols is the service pack 2 build's choice: the pre-fix tracker, with the KB 910618 defect.
func protocols() trackplugin.Protocols { return trackplugin.Prefix }
