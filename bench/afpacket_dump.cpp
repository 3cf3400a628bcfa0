// afpacket_dump: N live capture sockets on one interface in one PACKET_FANOUT group, one thread
// each, every socket's packets written to its own pcap file (nanosecond timestamps). For the
// fanout end-to-end test (tests/e2e/test_afpacket.py) and as a bare capture baseline.
//
//   afpacket_dump IFACE GROUP N OUTPREFIX [afpacket|libpcap]
//
// Writes OUTPREFIX.0.pcap .. OUTPREFIX.<N-1>.pcap (flushed after every batch), prints "ready" on
// stdout once every socket is bound, and at SIGINT/SIGTERM a JSON line per socket: its packets
// and the kernel's counters. GROUP 0: no fanout (N must then be 1).
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "capture/source.h"

using namespace tmach::capture;

namespace {

struct Socket {
  std::unique_ptr<PacketSource> src;
  FILE* out = nullptr;
  uint64_t packets = 0;
  std::string error;
};

std::atomic<bool> g_stop{false};

void put_header(FILE* f) {
  struct {
    uint32_t magic = 0xa1b23c4d;  // nanosecond pcap
    uint16_t major = 2, minor = 4;
    int32_t zone = 0;
    uint32_t sigfigs = 0, snaplen = 262144, linktype = 1;
  } h;
  fwrite(&h, sizeof(h), 1, f);
}

void run(Socket& s) {
  RawPacket batch[256];
  try {
    for (;;) {
      size_t n = s.src->next_batch(batch, 256);
      if (n == 0 && g_stop.load()) break;  // stopped and nothing left in the ring
      for (size_t i = 0; i < n; ++i) {
        const RawPacket& p = batch[i];
        uint32_t rec[4] = {static_cast<uint32_t>(p.ts_ns / 1000000000ull),
                           static_cast<uint32_t>(p.ts_ns % 1000000000ull), p.caplen, p.wirelen};
        fwrite(rec, sizeof(rec), 1, s.out);
        fwrite(p.data, 1, p.caplen, s.out);
      }
      s.packets += n;
      if (n) fflush(s.out);
    }
  } catch (const std::exception& e) {
    s.error = e.what();
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || argc > 6) {
    fprintf(stderr, "usage: afpacket_dump IFACE GROUP N OUTPREFIX [afpacket|libpcap]\n");
    return 2;
  }
  LiveOptions o;
  o.interface = argv[1];
  o.fanout_group = atoi(argv[2]);
  int n = atoi(argv[3]);
  std::string prefix = argv[4];
  o.method = LiveMethod::kAfPacket;
  if (argc == 6) {
    std::string m = argv[5];
    if (m == "libpcap")
      o.method = LiveMethod::kLibpcap;
    else if (m != "afpacket") {
      fprintf(stderr, "afpacket_dump: method '%s' is neither afpacket nor libpcap\n", argv[5]);
      return 2;
    }
  }
  if (n < 1 || (o.fanout_group == 0 && n != 1)) {
    fprintf(stderr, "afpacket_dump: N must be >= 1, and 1 without a fanout group\n");
    return 2;
  }
  // Signals go to the main thread only (sigwait below).
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::vector<Socket> socks(static_cast<size_t>(n));
  try {
    for (int i = 0; i < n; ++i) {
      socks[i].src = open_live_source(o);
      std::string path = prefix + "." + std::to_string(i) + ".pcap";
      socks[i].out = fopen(path.c_str(), "wb");
      if (!socks[i].out) {
        fprintf(stderr, "afpacket_dump: cannot write %s: %s\n", path.c_str(), strerror(errno));
        return 1;
      }
      put_header(socks[i].out);
      fflush(socks[i].out);
    }
  } catch (const std::exception& e) {
    fprintf(stderr, "afpacket_dump: %s\n", e.what());
    return 1;
  }
  std::vector<std::thread> threads;
  for (auto& s : socks) threads.emplace_back(run, std::ref(s));
  printf("ready\n");
  fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  g_stop = true;
  for (auto& s : socks) s.src->stop();
  for (auto& t : threads) t.join();
  int rc = 0;
  for (size_t i = 0; i < socks.size(); ++i) {
    auto st = socks[i].src->stats();
    printf("{\"socket\": %zu, \"packets\": %llu, \"kernel_received\": %llu, \"kernel_dropped\": %llu}\n", i,
           static_cast<unsigned long long>(socks[i].packets),
           static_cast<unsigned long long>(st.kernel_received),
           static_cast<unsigned long long>(st.kernel_dropped));
    fclose(socks[i].out);
    if (!socks[i].error.empty()) {
      fprintf(stderr, "afpacket_dump: socket %zu: %s\n", i, socks[i].error.c_str());
      rc = 1;
    }
  }
  return rc;
}
