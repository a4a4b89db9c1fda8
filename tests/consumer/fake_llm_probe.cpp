// SPDX-License-Identifier: BSL-1.0
// Uses the installed concur::fake_llm: starts the loopback server on a free
// port, prints its base URL and stops it, so the consumer test proves the
// exported target links (Boost.Beast, Boost.JSON) outside concur's build.
#include <concur/fake_llm.hpp>

#include <iostream>

int main() {
  concur::fake_llm::Server server;
  if (server.port() == 0 || server.stats().requests != 0 ||
      concur::fake_llm::reply_for("hello").empty()) {
    std::cerr << "fake_llm_probe: unexpected server state\n";
    return 1;
  }
  std::cout << "fake_llm " << server.base_url() << '\n';
}
