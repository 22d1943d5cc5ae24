// Package deltachat tests coibox with its real client: Delta Chat core
// (deltachat-rpc-server from npm) configures accounts, exchanges encrypted mail and
// files on one host, and chats across two chatmail hosts federating over /mxdeliv.
package deltachat
