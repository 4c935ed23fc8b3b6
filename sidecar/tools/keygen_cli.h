// `forkd keygen [--out FILE]`: a new CURVE key pair (Z85) for a tcp listen.
//   Without --out: prints `public: KEY` and `secret: KEY` on stdout.
//   With --out FILE: writes both lines to FILE, created with mode 0600 (an
//   existing file is never overwritten), and prints only the public line:
//   the key to hand to clients (curveServerKey, FORK_CURVE_SERVER_KEY) or,
//   for a client's pair, to put in forkd's curve.clients.
#pragma once

#include <string>

namespace forkd::tools {

struct KeygenArgs {
  std::string out;  // empty: stdout
};

// Exit 0; 1 when the file cannot be written or libzmq has no CURVE.
int Keygen(const KeygenArgs& args);

}  // namespace forkd::tools
