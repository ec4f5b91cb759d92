// The fork server ("zygote") of `scalelab-train --serve=SOCKET`: LibTorch's libraries take most
// of a trainer's start-up (0.75 s here, before main), so the worker starts one server per node
// that has loaded them once and forks one child per run; each child then runs exactly what
// `scalelab-train ARGS...` would in a process of its own. Wire format: runspec/fork_protocol.h.
//
// Fork safety: the server stays single-threaded and runs no LibTorch op before it forks, so no
// thread pool (OpenMP, the intra/inter-op pools) exists to be lost in the child; every child
// builds its own. Torch-free.
//
// Lifetime: the server dies with the process that started it (PR_SET_PDEATHSIG), each child dies
// with the server (the same), and the server SIGKILLs a child's process group when the
// connection that asked for it closes. So a worker killed with SIGKILL never leaves a trainer
// running: its connections close and its server dies, whichever comes first. The server names
// itself "scalelab-forksv" (PR_SET_NAME); its children name themselves "scalelab-train" again.

#ifndef SCALELAB_MODEL_FORK_SERVER_H_
#define SCALELAB_MODEL_FORK_SERVER_H_

#include <string>

namespace scalelab::model {

// What a forked child runs: `scalelab-train`'s main without the fork server, returning the exit
// code. Must not throw.
using ChildMain = int (*)(int argc, char** argv);

// Listens on the unix socket `socket_path` (replacing a stale file there) and serves start
// requests until SIGTERM or SIGINT, or until the process that started it dies. Returns the exit
// code: 0 after a signal (every child killed and reaped first), 1 when the socket cannot be set
// up (the reason on stderr).
int ServeForkRequests(const std::string& socket_path, ChildMain child_main);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_FORK_SERVER_H_
