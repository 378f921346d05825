// Command msgtrack is relayd's message-tracking plugin.
package main

func main() {}
