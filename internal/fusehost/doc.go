// Package fusehost serves FUSE image mounts for the node plugin from a
// process that outlives it. It runs in its own sidecar container of the
// plugin pod (its own DaemonSet in the chart): containers restart
// independently, and a restart kills every process in the container's
// cgroup, so mounts served from here outlive restarts (even kill -9) of the
// plugin container. A restart of fuse-host itself still ends them.
//
// Two ways to serve an image:
//   - serve: this process maps the image (a pool extent or a file),
//     validates its metadata, mounts it and serves it with a goroutine set
//     of its own (internal/fusefs). No exec: a cold mount costs the image's
//     metadata, not a process start. The plugin tracks it by handle.
//   - launch: start `daxfs-csi fuse-serve` as a child in its own session
//     and reap it (tracked by pid). Kept for plugins that predate serve.
//
// Protocol: one JSON request line per connection, one JSON response line.
//
//	{"op":"serve","pool":SPEC,"digest":D,"mountpoint":"/abs"} -> {"handle":H}
//	{"op":"serve","image":"/abs/file","mountpoint":"/abs"}    -> {"handle":H}
//	{"op":"stop","handle":H}                                  -> {}
//	{"op":"status","handle":H}                                -> {"handle":H,"alive":bool,"exit":"..."}
//	{"op":"launch","argv":[...],"logPath":"/abs/fuse.log"}    -> {"pid":N}
//	{"op":"status","pid":N}                                   -> {"pid":N,"alive":bool,"exit":"..."}
//	{"op":"list"}                                             -> {"pids":[...],"handles":[...]}
//
// A serve returns once the mount answers; a corrupt image or a missing
// extent is an error and nothing is mounted. stop unmounts (lazily when
// files are open) and is a no-op for an unknown or ended handle. Handles
// name the fuse-host instance: status of a previous instance's handle says
// unknown ({}), since its mounts died with it. An image whose mount is
// unmounted by anyone else is released and its handle reports "unmounted".
//
// Errors come back as {"error":"..."}. launch runs only argv[0] == the
// allowed binary with argv[1] == "fuse-serve": the socket runs code as root.
package fusehost

type request struct {
	Op      string   `json:"op"`
	Argv    []string `json:"argv,omitempty"`
	LogPath string   `json:"logPath,omitempty"`
	PID     int      `json:"pid,omitempty"`
	Handle  string   `json:"handle,omitempty"`
	Source
	Mountpoint string `json:"mountpoint,omitempty"`
	Debug      bool   `json:"debug,omitempty"`
}

type response struct {
	PID     int      `json:"pid,omitempty"`
	Handle  string   `json:"handle,omitempty"`
	Alive   bool     `json:"alive,omitempty"`
	Exit    string   `json:"exit,omitempty"`
	PIDs    []int    `json:"pids,omitempty"`
	Handles []string `json:"handles,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Status is what fuse-host knows of one process it launched, or of one
// image it serves (Handle set, PID 0).
type Status struct {
	PID    int
	Handle string
	Known  bool   // launched or served by this fuse-host instance
	Alive  bool   // not yet reaped; still serving
	Exit   string // how it ended ("exit status 1", "signal: killed", "unmounted")
}
