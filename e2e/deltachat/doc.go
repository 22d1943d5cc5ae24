// Package deltachat tests coibox with its real client: Delta Chat core
// (deltachat-rpc-server from npm) configures accounts, exchanges encrypted mail and files.
package deltachat
