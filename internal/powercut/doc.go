// Package powercut holds the power-cut tests: each runs a workload (the relay under load with its
// next hop up or down, a live hotfix apply and rollback under load) on a lazyfs mount of an
// install root, cuts the power at a random moment, boots the next process on what the disk kept
// (relayd, or `hotfix recover` and then relayd) and checks that nothing acknowledged was lost and
// that every file left behind is one its reader accepts.
//
// The tests live in their own package, with no code outside its tests, because they need root and
// FUSE and take minutes at full strength: `go test -run PowerCut ./...` runs them alone, the
// -cuts flag sets how many cuts a run makes, and CI runs the default round.
package powercut
