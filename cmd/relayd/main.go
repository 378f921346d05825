// Command relayd is the relayfix mail relay.
package main

func main() {}
