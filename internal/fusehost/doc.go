// Package fusehost launches `daxfs-csi fuse-serve` processes for the node
// plugin and reaps them. It runs in its own sidecar container of the plugin
// pod: containers restart independently, and a restart kills every process
// in the container's cgroup, so servers started from here outlive restarts
// of the plugin container (a restart of fuse-host itself still ends them).
//
// Protocol: one JSON request line per connection, one JSON response line.
//
//	{"op":"launch","argv":[...],"logPath":"/abs/fuse.log"} -> {"pid":N}
//	{"op":"status","pid":N}                                -> {"pid":N,"alive":bool,"exit":"..."}
//	{"op":"list"}                                          -> {"pids":[...]}
//
// Errors come back as {"error":"..."}. Only argv[0] == the allowed binary
// and argv[1] == "fuse-serve" is launched: the socket runs code as root.
package fusehost

type request struct {
	Op      string   `json:"op"`
	Argv    []string `json:"argv,omitempty"`
	LogPath string   `json:"logPath,omitempty"`
	PID     int      `json:"pid,omitempty"`
}

type response struct {
	PID   int    `json:"pid,omitempty"`
	Alive bool   `json:"alive,omitempty"`
	Exit  string `json:"exit,omitempty"`
	PIDs  []int  `json:"pids,omitempty"`
	Error string `json:"error,omitempty"`
}

// Status is what fuse-host knows of one process it launched.
type Status struct {
	PID   int
	Known bool   // launched by this fuse-host instance
	Alive bool   // not yet reaped
	Exit  string // how it ended, when reaped ("exit status 1", "signal: killed")
}
