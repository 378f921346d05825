//go:build !linux

package trackhost

import "os/exec"

func setPdeathsig(*exec.Cmd) {}
