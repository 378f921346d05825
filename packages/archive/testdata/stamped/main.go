// Command stamped is a tiny payload binary for package tests: it only reports the file version
// stamped into it at link time.
package main

import (
	"fmt"

	"relayfix/internal/stamp"
)

func main() { fmt.Println(stamp.Version()) }
