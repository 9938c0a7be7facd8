// Package control is the channel between a live mmapfs server and the
// commands that ask it about itself or change it while it runs
// (`mmapfs stats`, `mmapfs resize`, `mount -o remount`).
//
// A server listens on an abstract unix socket named after the device
// number of its mount ("mmapfs/control/MAJOR:MINOR"), so that a command
// finds it from the mount point alone, and nothing is left behind in the
// file system if the server is killed. Anyone may connect to an abstract
// socket, so each side checks the other's credentials (SO_PEERCRED): the
// server answers only root and the user who owns the mount; the command
// talks only to a server run by root or by the mount's owner.
//
// Each connection carries one request and its response, each a single
// line of JSON.
package control
