// End-to-end test of examples/dirhash: its stdout must satisfy `sha256sum -c`
// and its exit status must report skipped files.
//
// Unreadable files: `chmod 000` does not stop root (CI runs as root), so the
// tree holds kinds of entry that no user can read as a regular file: a fifo
// (a special file: opening it for reading would block, so dirhash must skip
// it without opening it blindly) and a dangling symlink (reading it fails
// with ENOENT for everyone). A chmod 000 file is added only when not root.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#ifndef BLOCKPOOL_DIRHASH_BIN
#error "BLOCKPOOL_DIRHASH_BIN must name the dirhash binary"
#endif
#ifndef BLOCKPOOL_SHA256SUM
#define BLOCKPOOL_SHA256SUM "sha256sum"
#endif

namespace fs = std::filesystem;

namespace {

struct TempTree {
  TempTree() {
    std::string tmpl = (fs::temp_directory_path() / "dirhash-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root = tmpl;
  }
  ~TempTree() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  void write(const fs::path& rel, const std::string& content) const {
    fs::create_directories((root / rel).parent_path());
    std::ofstream(root / rel, std::ios::binary) << content;
  }
  fs::path root;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs a shell command; returns its exit status (or -1 if it did not exit).
int run(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'')
      q += "'\\''";
    else
      q.push_back(c);
  }
  return q + "'";
}

struct Result {
  int status;
  std::string out, err;
  fs::path out_file;
};

Result dirhash(const TempTree& t, const std::string& args) {
  const fs::path out = t.root.string() + ".out";
  const fs::path err = t.root.string() + ".err";
  Result r;
  r.status = run(quote(BLOCKPOOL_DIRHASH_BIN) + " " + args + " >" + quote(out.string()) + " 2>" +
                 quote(err.string()));
  r.out = slurp(out);
  r.err = slurp(err);
  r.out_file = out;
  std::error_code ec;
  fs::remove(err, ec);
  return r;
}

std::size_t count_lines(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(Dirhash, OutputVerifiesWithSha256sumAndSkipsAreReported) {
  TempTree t;
  t.write("a.txt", "hello\n");
  t.write("empty", "");
  t.write("sub/deep/big.bin", std::string(700 * 1024, '\x5a'));  // several read chunks
  t.write("space name.txt", "spaces");
  t.write("back\\slash", "backslash");
  t.write("new\nline", "newline");
  t.write("cr\rname", "carriage return");
  fs::create_symlink(t.root / "a.txt", t.root / "link_to_a");      // hashed through
  fs::create_directory_symlink(t.root / "sub", t.root / "dirlink");  // not followed
  fs::create_symlink(t.root / "missing", t.root / "dangling");     // skipped
  ASSERT_EQ(::mkfifo((t.root / "pipe").c_str(), 0644), 0);         // skipped
  std::size_t expected_skips = 2;
  if (::geteuid() != 0) {
    t.write("secret", "no access");
    fs::permissions(t.root / "secret", fs::perms::none);
    ++expected_skips;
  }
  constexpr std::size_t kHashed = 8;  // a.txt empty big.bin space back new cr link_to_a

  const Result r = dirhash(t, "--jobs 3 " + quote(t.root.string()));
  EXPECT_EQ(r.status, 1) << r.err;  // 1: some files were skipped
  EXPECT_NE(r.err.find("dangling"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("pipe"), std::string::npos) << r.err;
  if (expected_skips == 3) {
    EXPECT_NE(r.err.find("secret"), std::string::npos) << r.err;
  }
  EXPECT_NE(r.err.find("files"), std::string::npos) << r.err;  // the summary
  EXPECT_EQ(count_lines(r.out), kHashed) << r.out;
  // The empty file's digest, and escaped names start their line with '\'.
  EXPECT_NE(r.out.find("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  "),
            std::string::npos);
  EXPECT_NE(r.out.find("new\\nline"), std::string::npos);
  EXPECT_NE(r.out.find("back\\\\slash"), std::string::npos);
  EXPECT_EQ(r.out.find("dirlink"), std::string::npos);

  EXPECT_EQ(run(std::string(BLOCKPOOL_SHA256SUM) + " -c --strict --quiet " +
                quote(r.out_file.string())),
            0)
      << r.out;
  std::error_code ec;
  fs::remove(r.out_file, ec);
}

TEST(Dirhash, CleanTreeExitsZeroAndInlineModeAgrees) {
  TempTree t;
  for (int i = 0; i < 20; ++i)
    t.write("d" + std::to_string(i % 3) + "/f" + std::to_string(i), std::to_string(i));
  const Result pooled = dirhash(t, quote(t.root.string()));
  EXPECT_EQ(pooled.status, 0) << pooled.err;
  EXPECT_EQ(count_lines(pooled.out), 20u);
  EXPECT_EQ(run(std::string(BLOCKPOOL_SHA256SUM) + " -c --strict --quiet " +
                quote(pooled.out_file.string())),
            0);
  const Result inl = dirhash(t, "--inline " + quote(t.root.string()));
  EXPECT_EQ(inl.status, 0) << inl.err;
  EXPECT_EQ(inl.out, pooled.out);  // same sorted output either way
  std::error_code ec;
  fs::remove(pooled.out_file, ec);
}

TEST(Dirhash, UsageErrorsExitTwo) {
  TempTree t;
  EXPECT_EQ(dirhash(t, "--jobs 0 " + quote(t.root.string())).status, 2);
  EXPECT_EQ(dirhash(t, "--bogus").status, 2);
  EXPECT_EQ(dirhash(t, quote((t.root / "does-not-exist").string())).status, 2);
  std::error_code ec;
  fs::remove(t.root.string() + ".out", ec);
}

}  // namespace
