// util/file_io.h: write_all, pread_full, replace_file_atomic.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "temp_dir.h"
#include "util/file_io.h"

using namespace tmach;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST(FileIo, WriteAllThroughASmallPipe) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  ASSERT_GT(fcntl(fds[1], F_SETPIPE_SZ, 4096), 0);  // many short writes for 1 MiB
  std::string want(1 << 20, '\0');
  for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<char>(i * 131 + (i >> 12));
  std::string got;
  std::thread reader([&] {
    char buf[1000];  // reads less than a pipe buffer at a time
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof(buf))) > 0) got.append(buf, static_cast<size_t>(n));
  });
  util::write_all(fds[1], want.data(), want.size(), "the pipe");
  close(fds[1]);
  reader.join();
  close(fds[0]);
  EXPECT_TRUE(got == want) << got.size() << " bytes arrived of " << want.size();
}

TEST(FileIo, WriteAllNamesThePathOnError) {
  TempDir d;
  std::string path = (d.p / "ro").string();
  { std::ofstream(path) << "x"; }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  try {
    util::write_all(fd, "abc", 3, path);
    ADD_FAILURE() << "no error";
  } catch (const util::IoError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  close(fd);
}

TEST(FileIo, PreadFullStopsAtTheEnd) {
  TempDir d;
  std::string path = (d.p / "f").string();
  { std::ofstream(path) << "0123456789"; }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  char buf[20] = {};
  EXPECT_EQ(util::pread_full(fd, buf, 4, 2), 4);
  EXPECT_EQ(std::string(buf, 4), "2345");
  EXPECT_EQ(util::pread_full(fd, buf, 20, 5), 5);
  EXPECT_EQ(std::string(buf, 5), "56789");
  EXPECT_EQ(util::pread_full(fd, buf, 20, 10), 0);
  close(fd);
  EXPECT_EQ(util::pread_full(fd, buf, 4, 0), -1);  // closed
}

TEST(FileIo, ReplaceFileAtomicKeepsTheOldContentOnFailure) {
  TempDir d;
  std::string path = (d.p / "list.json").string();
  util::replace_file_atomic(path, "old\n");
  EXPECT_EQ(slurp(path), "old\n");
  EXPECT_THROW(util::replace_file_atomic(path,
                                         [](int fd, const std::string& tmp) {
                                           util::write_all(fd, "half", 4, tmp);
                                           throw util::IoError("disk full");
                                         }),
               util::IoError);
  EXPECT_EQ(slurp(path), "old\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  util::replace_file_atomic(path, "new\n");
  EXPECT_EQ(slurp(path), "new\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_THROW(util::replace_file_atomic((d.p / "no-such-dir" / "f").string(), "x"), util::IoError);
}

TEST(FileIo, ReplaceFileAtomicReadersSeeOldOrNew) {
  TempDir d;
  std::string path = (d.p / "f").string();
  const std::string a(200000, 'a'), b(300000, 'b');
  util::replace_file_atomic(path, a);
  std::atomic<bool> done{false};
  int reads = 0, bad = 0;
  std::thread reader([&] {
    while (!done) {
      std::string s = slurp(path);
      ++reads;
      if (s != a && s != b) ++bad;
    }
  });
  for (int i = 0; i < 40; ++i) util::replace_file_atomic(path, i % 2 ? a : b);
  done = true;
  reader.join();
  EXPECT_GT(reads, 0);
  EXPECT_EQ(bad, 0) << "of " << reads << " reads";
}
