//go:build !msgtrack_prefix

package main

import "relayfix/relay/trackplugin"

// protocols is the KB910618 build's choice: the fixed tracker.
func protocols() trackplugin.Protocols { return trackplugin.Fixed }
