// tm frontend: one HTTP API in front of several tm serve workers — the routes every API has
// (server/routes.h) over a ClusterService (cluster_service.h), plus what only a front-end
// answers: the cluster as configured, the outcome of a packet query by its id, and which
// workers a filter asks.
#pragma once

#include "cluster/cluster_config.h"
#include "cluster/cluster_service.h"
#include "server/routes.h"

namespace tmach::cluster {

class Frontend {
 public:
  explicit Frontend(ClusterConfig cfg);
  ~Frontend();
  // Binds the listening socket; returns the address bound as HOST:PORT (the port the system
  // chose for port 0). Throws std::runtime_error when the address cannot be bound.
  std::string bind();
  void serve();  // blocks until stop()
  void stop();

 private:
  ClusterService svc_;
  server::HttpApi http_;
};

}  // namespace tmach::cluster
