// tm-daemon: Time Machine's long-running programs, `tm serve` (record live interfaces and
// serve the HTTP API) and `tm frontend` (one API over many recorders). They link cpp-httplib's
// server; `tm` does not, and executes this program when given `serve` or `frontend`
// (docs/DESIGN.md, "Two executables"). It may be run directly too: `tm-daemon serve ...`.
#include "cmdline/program.h"
#include "daemon/commands.h"

int main(int argc, char** argv) {
  tmach::cli::Program tm("tm-daemon - Time Machine's daemons: tm serve and tm frontend");
  tm.command("serve", "record live interfaces and serve the HTTP API (or serve a store read-only)",
             tmach::cli::add_serve);
  tm.command("frontend", "one API in front of several tm serve workers: queries fan out and merge by time",
             tmach::cli::add_frontend);
  return tm.main(argc, argv);
}
