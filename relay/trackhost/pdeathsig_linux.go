package trackhost

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel kill the plugin when relayd dies, even by SIGKILL; otherwise it
// would be reparented and keep the tracking log open.
func setPdeathsig(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
